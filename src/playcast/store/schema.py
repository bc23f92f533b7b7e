"""Every table the store declares, gathered on one MetaData (models.py, broadcasts.py, chat.py, hosts.py).

The target that migrations are generated from and checked against; defines no table of its own."""

from __future__ import annotations

from sqlalchemy import MetaData

from . import broadcasts as _broadcasts  # noqa: F401 - registers its table on Base
from . import chat as _chat  # noqa: F401 - registers the chat tables on Base
from . import hosts as _hosts  # noqa: F401 - registers the fleet tables on Base
from .models import Base

metadata: MetaData = Base.metadata
