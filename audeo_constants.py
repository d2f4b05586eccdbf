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
# Video2Roll inference precisions: bf16 autocast (fast on CPUs with AMX), int8 (a quantized body, CPU only;
# the checkpoint must carry a calibration, tools/calibrate_int8.py)
PRECISIONS = ("fp32", "bf16", "int8")
INT8_KEY = "int8_observers"           # checkpoint entry: {observer name: tensor} of the calibrated int8 body
LIVE_MAX_BATCH = 16                   # live: frames run at once while catching up (one at a time when keeping up)
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

# --- key-overlay video (audeo_overlay) -------------------------------------------------------
OVERLAY_KEY_BGR = (40, 230, 40)       # pressed keys: green, far from skin, wood and key tones
OVERLAY_KEY_ALPHA = 0.6               # how much of the green covers a pressed key
OVERLAY_OUTLINE_BGR = (255, 0, 255)   # the keyboard's outline: magenta
OVERLAY_LINE_PER_PX = 1 / 300         # outline thickness per pixel of frame width (at least 3 px, so
OVERLAY_MIN_LINE = 3                  # H.264's half-resolution colour keeps it)
OVERLAY_PRESET = "veryfast"           # libx264 preset of the overlay video: encoding is most of its time
PROGRESS_EVERY = FPS                  # frames between two progress reports of a frame-by-frame stage

# --- sheet music (audeo_sheet) -------------------------------------------------------------
SHEET_DIVISIONS = 4           # quantisation grid: 4 steps a beat (sixteenth notes in x/4)
SHEET_SPLIT_PITCH = 60        # middle C and above on the treble staff, the rest on the bass staff
SHEET_METRES = (4, 3)         # beats a bar tried (2/4 is written as 4/4); the first wins a tie
SHEET_DEFAULT_BPM = 120.0     # the tempo when too few notes to track a beat
SHEET_MIN_BEATS = 4           # fewer notes (or beats with a note) than this: the default tempo, phase at the first note
SHEET_ENVELOPE_RATE = 100     # Hz: the note-onset envelope the tempo and phase are searched on
SHEET_ENVELOPE_SIGMA = 0.02   # s: its Gaussian smoothing (a chord's notes within a frame add up)
SHEET_BPM_RANGE = (30, 300)   # tempi searched
SHEET_PRIOR_BPM = 120.0       # the tempo prior (librosa's beat-tracker default): log-normal around this ...
SHEET_PRIOR_OCTAVES = 1.0     # ... with this standard deviation in octaves
SHEET_ON_BEAT = 0.15          # beats: onsets this near a beat of the comb refine the tempo (sixteenths, 0.25, do not)
SHEET_FIT_ROUNDS = 3          # least-squares refinements of tempo and phase
SHEET_NOTE_QUARTERS = (4, 3, 2, 1.5, 1, 0.75, 0.5, 0.25)   # plain and dotted lengths written (quarters)
SHEET_PREVIEW_WIDTH = 2100    # verovio page width (its units: 1/10 mm at scale 100)
SHEET_MAX_SECONDS = 300       # s: the sheet holds the notes that start in the first 5 minutes (music21 keeps a whole
                              # score in memory, ~9 MB a minute of notes: an hour would add ~500 MB; the MIDI is whole)
SHEET_PREVIEW_HEIGHT = 100    # verovio's smallest page height: each page holds one system, stretched to fit

# --- music identification (audeo_identify) ---------------------------------------------------
# The paper's identification test, offline: 10 s excerpts (what a phone app hears) looked up in a
# library of reference renderings and distractor pieces by CENS chroma and subsequence DTW.
IDENTIFY_EXCERPT_SECONDS = 10.0   # one query excerpt
IDENTIFY_EXCERPTS = 4             # excerpts per query audio, centred in 4 equal parts of it
IDENTIFY_DISTRACTORS = 50         # library pieces besides the references
IDENTIFY_OUTSIDE = 5              # further corpus pieces kept out of the library: their excerpts must be rejected
IDENTIFY_NOISE_EXCERPTS = 4       # white-noise excerpts, also to be rejected
IDENTIFY_NOISE_RMS = 0.1          # their level (-20 dBFS)
IDENTIFY_TOP_K = 5                # the "top-5" rate
IDENTIFY_SEED = 0                 # humanisation seed of the corpus pieces in the library
IDENTIFY_CHROMA_HOP = 640         # samples at 16 kHz: 25 chroma frames/s (a CQT hop must be a multiple of 64)
IDENTIFY_CENS_SMOOTH = 41         # chroma frames CENS smooths over (1.64 s): note-level detail and timbre fade
IDENTIFY_CENS_STEP = 5            # every 5th smoothed frame kept: 5 feature frames/s, 50 a query
IDENTIFY_SILENCE_DB = -60.0       # feature frames whose audio RMS is below this (dBFS) carry no chroma,
IDENTIFY_FLAT_COSINE = 0.99       # nor those this close to the flat chroma vector (white noise: 0.992-1.0;
                                  # music measured up to 0.988, a real recording's quiet passages)
IDENTIFY_DTW_STEPS = ((1, 1), (2, 1), (1, 2))   # (query, library) DTW steps: local tempo ratios 0.5 .. 2
IDENTIFY_SHIFTS = 3               # chroma shifts tried per library piece: none (the same key), then the best by
                                  # OTI (agreement of the query's and the piece's chroma profiles); 12 = every
                                  # transposition, 2.5x slower, and the same ranks on the measured queries
IDENTIFY_MIN_MARGIN = 0.4         # accepted only if 1 - best cost / second-best piece's cost >= this (measured:
                                  # the right piece 0.51-0.99, real recordings 0.51-0.74; 160 excerpts of 40
                                  # chorales outside the library: 5 at 0.42-0.51, 2 of them a library chorale's
                                  # tune, the rest <= 0.38)
IDENTIFY_MIN_CHROMA = 0.5         # an excerpt with fewer of its frames carrying chroma is rejected: nothing to
                                  # identify (silence, noise)
IDENTIFY_DUPLICATE_COST = 0.04    # a distractor matching half of a reference's own-rendering excerpts at or
                                  # below this cost is the same music (another rendition: 0.02-0.03; other
                                  # pieces 0.054 and up) and is replaced

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
