"""Audio for Lumina-V2A: log-mel spectrograms (mel.py), audio in media files (media.py), the audio VAE
(vae.py: diffusers' AutoencoderKL over (time, mel)) and the vocoder (vocoder.py: transformers'
SpeechT5HifiGan, or Griffin-Lim without weights)."""
from .media import (
    AudioClip,
    CorruptAudioError,
    NoAudioStreamError,
    audio_duration,
    read_audio,
    video_duration,
    write_video_with_audio,
    write_wav,
)
from .mel import AUDIOLDM, MelConfig, MelSpectrogram, mel_filterbank, mel_spectrogram
from .vae import AudioVAE, audioldm_vae_config, tiny_audio_vae_config
from .vocoder import GriffinLim, Vocoder, audioldm_vocoder_config, load_vocoder, tiny_vocoder_config

__all__ = [
    "AUDIOLDM", "MelConfig", "MelSpectrogram", "mel_filterbank", "mel_spectrogram",
    "AudioClip", "CorruptAudioError", "NoAudioStreamError", "audio_duration", "read_audio", "video_duration",
    "write_video_with_audio", "write_wav",
    "AudioVAE", "audioldm_vae_config", "tiny_audio_vae_config",
    "GriffinLim", "Vocoder", "audioldm_vocoder_config", "load_vocoder", "tiny_vocoder_config",
]
