"""Input for stream sessions: the binary wire format of the "input" data channel and its injection (XTest, uinput).

No networking here: the media layer hands data-channel bytes to InputInjector.handle()."""

from playcast.host.input.injector import InputInjector
from playcast.host.input.protocol import InputProtocolError, decode, encode

__all__ = ["InputInjector", "InputProtocolError", "decode", "encode"]
