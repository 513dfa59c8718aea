"""The audio player: gapless crossfades through sounddevice, kept alive by a supervisor."""

from .decode import decode_audio, read_audio_file
from .player import Player
from .prepare import ClipError, PreparedClip

__all__ = ["ClipError", "Player", "PreparedClip", "decode_audio", "read_audio_file"]
