"""Data sets: read NSynth (downloaded or rendered) and render an NSynth-format dataset from a soundfont; read ESC-50
and UrbanSound8K with their official folds, Speech Commands with its official split, and IRMAS's training
excerpts and testing pieces; read a Hugging Face dataset's ``Audio`` column with the library's own decoder."""

from .folds import ESC50_FOLDS, URBANSOUND8K_FOLDS, read_esc50, read_urbansound8k
from .gm import FAMILY_PITCH_RANGES, GM_EXCLUDED, GM_PROGRAMS
from .hf import HFAudio, read_hf
from .irmas import IRMAS_GENRES, IRMAS_INSTRUMENTS, read_irmas
from .nsynth import (
    NSYNTH_FAMILIES,
    NSYNTH_PATTERN,
    NSYNTH_QUALITIES,
    NSYNTH_SOURCES,
    NSYNTH_SPLITS,
    NSYNTH_VELOCITIES,
    read_nsynth,
)
from .speech_commands import SPEECH_COMMANDS_SPLITS, read_speech_commands
from .synth import SYNTH_SIZES, synth_nsynth

__all__ = [
    "read_nsynth",
    "synth_nsynth",
    "NSYNTH_FAMILIES",
    "NSYNTH_SOURCES",
    "NSYNTH_SPLITS",
    "NSYNTH_VELOCITIES",
    "NSYNTH_QUALITIES",
    "NSYNTH_PATTERN",
    "GM_PROGRAMS",
    "GM_EXCLUDED",
    "FAMILY_PITCH_RANGES",
    "SYNTH_SIZES",
    "read_esc50",
    "read_urbansound8k",
    "ESC50_FOLDS",
    "URBANSOUND8K_FOLDS",
    "read_speech_commands",
    "SPEECH_COMMANDS_SPLITS",
    "read_irmas",
    "IRMAS_INSTRUMENTS",
    "IRMAS_GENRES",
    "read_hf",
    "HFAudio",
]
