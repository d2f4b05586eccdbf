"""Every magic number of the Audeo pipeline, in one place.

Base values are typed once; everything else is derived from them. Key indices are 0-based
positions in the 88-key roll (index 0 = A0 = MIDI 21), as in the original's label vectors.
"""
from pathlib import Path

# --- time -----------------------------------------------------------------------------------
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".wmv", ".webm", ".m4v")   # what a folder of videos holds
FPS = 25                      # video frame rate of every roll (the original's 25 fps)
SAMPLE_RATE = 16000           # audio sample rate of synthesised wavs (the original's 16 kHz)

# --- keyboard -------------------------------------------------------------------------------
N_KEYS = 88
MIDI_LOW = 21                 # A0
MIDI_HIGH = MIDI_LOW + N_KEYS - 1   # C8 = 108

# The paper's 51-key range: 0-based key indices 15..65 inclusive, MIDI 36 (C2) .. 86 (D6).
PAPER_MIN_KEY = 15
PAPER_MAX_KEY = 65
PAPER_N_KEYS = PAPER_MAX_KEY - PAPER_MIN_KEY + 1          # 51
PAPER_MIDI_LOW = MIDI_LOW + PAPER_MIN_KEY                 # 36

# White keys among the 12 pitch classes (C=0). The 88-key piano has 52 white keys.
WHITE_PITCH_CLASSES = (0, 2, 4, 5, 7, 9, 11)
N_WHITE_KEYS = sum((MIDI_LOW + k) % 12 in WHITE_PITCH_CLASSES for k in range(N_KEYS))

# --- segments and windows -------------------------------------------------------------------
SEGMENT_FRAMES = 50           # one npz segment = 2 s of roll
ROLL2MIDI_SEGMENTS = 2        # Roll2Midi works on two segments at a time
ROLL2MIDI_FRAMES = ROLL2MIDI_SEGMENTS * SEGMENT_FRAMES    # 100 frames = 4 s

# --- Video2Roll input -----------------------------------------------------------------------
STACK_FRAMES = 5              # frames t-2 .. t+2 stacked as channels
STACK_RADIUS = STACK_FRAMES // 2
CROP_HEIGHT = 100             # grayscale keyboard crop, H x W
CROP_WIDTH = 900

# --- reference keyboard (online, per video: audeo_video.KeyboardReference) --------------------
# A hands-free picture of the keyboard that Video2Roll compares each frame with. It starts as the
# per-pixel median of frames sampled from the first REFERENCE_INIT_FRAMES, then each frame refreshes
# the pixels far from any change (hands, pressed keys) and nudges every pixel slowly towards the
# frame (so a hand that rested in the first seconds, or a lighting change, fades out).
REFERENCE_INIT_FRAMES = 2 * FPS       # 2 s: a stream waits this long once, at its start
LIVE_WARMUP_FRAMES = 5 * FPS          # live latency: start-up (reference, first backlog) vs steady state
# live: once a second the view is compared with the one the box was found on (phase correlation of
# frames shrunk to LIVE_VIEW_WIDTH); moved by more than LIVE_MOVE_FRACTION of the box width, the
# keyboard is found again on the last second of frames
LIVE_RECHECK_FRAMES = FPS
LIVE_VIEW_WIDTH = 320
LIVE_MOVE_FRACTION = 0.01
REFERENCE_INIT_STRIDE = 5             # ... using every 5th of them (10 frames)
REFERENCE_CHANGE = 24                 # grey levels (0..255) that count as a change (hand or press)
REFERENCE_GROW = (9, 25)              # (rows, columns) a change's mask is grown by: a finger's surroundings
REFERENCE_RATE = 0.5                  # fraction of the way unmasked pixels move to the frame, per frame
REFERENCE_DRIFT = 0.25                # grey levels every pixel moves towards the frame per frame
REFERENCE_DIR = "references"          # <root>/references/<split>/<video>.npy  uint8 (T, 100, 900), derived
HAND_FRACTION = 0.003                 # a frame "has a hand over the keys" when this fraction of it changed

# --- decisions ------------------------------------------------------------------------------
ROLL_THRESHOLD = 0.4          # the original's threshold on sigmoid(logit) for Video2Roll
ONSET_THRESHOLD = 0.5         # a sequence model's onset output: a note starts at a peak at least this high
# operating points a sequence model's validation tries (frame thresholds x onset thresholds)
DECODING_GRID = ((0.3, 0.4, 0.5), (0.1, 0.15, 0.2, 0.3, 0.4, 0.5))
MIDI_THRESHOLD = 0.5          # the original's threshold on the Roll2Midi generator output
ONSET_TOLERANCE = 0.05        # mir_eval's note-onset tolerance, seconds (a 25 fps frame is 0.04 s)
WIDE_ONSET_TOLERANCES = (0.1, 0.15)   # also reported: the tolerances other video papers use
OFFSET_RATIO = 0.2            # mir_eval's offset tolerance, fraction of the reference note's length
OFFSET_MIN_TOLERANCE = 0.05   # mir_eval's minimum offset tolerance, seconds
DEFAULT_VELOCITY = 100        # the original's constant note velocity in Midi_synth
MIDI_TEMPO = 120             # written MIDI files: 120 bpm x 1000 ticks per beat = 0.5 ms ticks,
MIDI_RESOLUTION = 1000       # so every 25 fps frame boundary (0.04 s) is a whole number of ticks
TICK_SECONDS = 60.0 / (MIDI_TEMPO * MIDI_RESOLUTION)
SUSTAIN_CC = 64               # MIDI control change of the sustain (damper) pedal
# synthesis at a fixed level (no normalisation: a stream cannot know its peak): a 10-note chord at
# velocity 127 stays under full scale with either backend; the demo clip peaks near 0.4
PICTURE_MAX_FRAMES = 5000      # roll pictures max-pool longer rolls (3 min 20 s) down to this width
FLUID_GAIN = 0.8              # FluidSynth's master gain (its default 0.2 peaks the demo at 0.1)
TSF_GAIN_DB = 2.0             # tinysoundfont's master gain, dB
RELEASE_SECONDS = 1.0         # audio kept after the last event (the notes' release)
SYNTH_BLOCK = 25 * 640        # samples synthesised per call: whole 25 fps frames at 16 kHz (64-sample blocks)
PEDAL_DOWN = 64               # CC value at or above which the pedal counts as down

# --- dataset layout (the original's folder names) -------------------------------------------
SPLITS = ("training", "validation", "testing")
FRAMES_DIR = "input_images"       # <root>/input_images/<split>/<video>/frame<N>.jpg
FRAME_STORE_DIR = "frames"        # <root>/frames/<split>/<video>.npy  (T, H, W) uint8
LABELS_DIR = "labels"             # <root>/labels/<split>/<video>.pkl (sustain-extended, the original's)
KEYDOWN_LABELS_DIR = "labels_keydown"   # the same without the pedal: what a camera can see
PERFORMANCE_DIR = "performances"  # <root>/performances/<split>/<video>.mid, the labels' source
MIDI_DIR = "midi"                 # <root>/midi/<split>/<video>/<start>-<end>.npz
ESTIMATE_DIR = "estimate_Roll"    # Video2Roll output npz (logit, roll)
ROLL2MIDI_DIR = "Roll2Midi_results"  # Roll2Midi output npz (midi)

# --- the shipped models (models/, fp16; see tools/train_models.sh) ---------------------------
MODELS_DIR = Path(__file__).resolve().parent / "models"
VIDEO2ROLL_MODEL = MODELS_DIR / "video2roll_seq.pt"     # the default Video2Roll everywhere
ROLL2MIDI_MODEL = MODELS_DIR / "roll2midi.pt"


def key_to_midi(key: int) -> int:
    return MIDI_LOW + key


def is_white_key(key: int) -> bool:
    return key_to_midi(key) % 12 in WHITE_PITCH_CLASSES
