//! Sample-rate conversion and MP3 encoding for synthesised speech.
//!
//! Resampling is a windowed-sinc interpolator (Blackman window, 24 zero crossings each side) with its
//! cut-off below the lower of the two Nyquist frequencies, which is what a speech recogniser needs from a
//! 22.05 → 16 kHz conversion (no aliasing of the voice's upper harmonics). Each sentence is converted
//! whole, so no state crosses calls.
//!
//! MP3 comes from Debian's `lame` in its own process per sentence (the LAME library is LGPL; a separate
//! process keeps it out of our binary): raw PCM in, a complete MP3 stream out, so sentences concatenate.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ZERO_CROSSINGS: f64 = 24.0;

/// `input` at `from` Hz converted to `to` Hz.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() || from == 0 || to == 0 {
        return input.to_vec();
    }
    let ratio = f64::from(to) / f64::from(from);
    // Cut-off as a fraction of the input rate's Nyquist frequency, a little below the lower Nyquist.
    let cutoff = ratio.min(1.0) * 0.95;
    let half_width = ZERO_CROSSINGS / cutoff;
    let output_length = (input.len() as f64 * ratio).round() as usize;
    let mut output = Vec::with_capacity(output_length);
    for index in 0..output_length {
        let centre = index as f64 / ratio;
        let first = (centre - half_width).ceil().max(0.0) as usize;
        let last = ((centre + half_width).floor() as usize).min(input.len() - 1);
        let mut sum = 0.0f64;
        for (position, &sample) in input.iter().enumerate().take(last + 1).skip(first) {
            let distance = centre - position as f64;
            sum += f64::from(sample) * cutoff * sinc(cutoff * distance) * blackman(distance / half_width);
        }
        output.push(sum as f32);
    }
    output
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-9 {
        1.0
    } else {
        let angle = std::f64::consts::PI * x;
        angle.sin() / angle
    }
}

/// Blackman window over [-1, 1].
fn blackman(position: f64) -> f64 {
    if position.abs() >= 1.0 {
        return 0.0;
    }
    let phase = std::f64::consts::PI * (position + 1.0);
    0.42 - 0.5 * phase.cos() + 0.08 * (2.0 * phase).cos()
}

/// Floats in ±1 to signed 16-bit, clipped.
pub fn to_pcm16(samples: &[f32]) -> Vec<i16> {
    samples.iter().map(|&sample| (sample.clamp(-1.0, 1.0) * 32767.0).round() as i16).collect()
}

/// Encodes mono 16-bit PCM as one MP3 stream with the `lame` program.
pub async fn encode_mp3(lame: &Path, samples: &[i16], sample_rate: u32) -> Result<Vec<u8>, String> {
    let kilohertz = format!("{}", f64::from(sample_rate) / 1000.0);
    let mut child = tokio::process::Command::new(lame)
        .args(["-r", "-s", &kilohertz, "--bitwidth", "16", "--signed", "--little-endian", "-m", "m", "-b", "64"])
        .args(["--quiet", "-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot start {} (install Debian's lame package): {error}", lame.display()))?;
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err("lame's pipes are missing".into());
    };
    let pcm = nexent_core::voice::pcm16_bytes(samples);
    // Written while the output is read: a sentence is larger than a pipe's buffer.
    let writer = tokio::spawn(async move {
        let written = stdin.write_all(&pcm).await;
        drop(stdin);
        written
    });
    let mut mp3 = Vec::new();
    let mut complaint = String::new();
    let (read, _) = tokio::join!(stdout.read_to_end(&mut mp3), stderr.read_to_string(&mut complaint));
    read.map_err(|error| format!("reading lame's output: {error}"))?;
    let status = child.wait().await.map_err(|error| format!("waiting for lame: {error}"))?;
    match writer.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(format!("writing to lame: {error}")),
        Err(error) => return Err(format!("writing to lame: {error}")),
    }
    if !status.success() || mp3.is_empty() {
        return Err(format!("lame failed ({status}): {}", complaint.trim()));
    }
    Ok(mp3)
}

/// Peak level of each sentence after normalisation (a little headroom below full scale).
const PEAK: f32 = 0.9;
/// Silence after each sentence (Piper's own default), so sentences do not run into each other.
const SENTENCE_SILENCE_SECONDS: f32 = 0.2;

/// One synthesised sentence as the client asked for it: normalised to [`PEAK`], followed by a short
/// silence, resampled from `native_rate` to `sample_rate` (on a blocking thread), encoded.
pub async fn finish_sentence(
    mut audio: Vec<f32>,
    native_rate: u32,
    sample_rate: u32,
    encoding: nexent_core::voice::AudioEncoding,
    lame: &Path,
) -> Result<Vec<u8>, nexent_core::voice::VoiceError> {
    use nexent_core::voice::{AudioEncoding, VoiceError};
    let peak = audio.iter().fold(0.0f32, |peak, sample| peak.max(sample.abs()));
    let gain = PEAK / peak.max(0.01);
    audio.iter_mut().for_each(|sample| *sample *= gain);
    audio.extend(std::iter::repeat_n(0.0, (native_rate as f32 * SENTENCE_SILENCE_SECONDS) as usize));
    let audio = if sample_rate == native_rate {
        audio
    } else {
        tokio::task::spawn_blocking(move || resample(&audio, native_rate, sample_rate))
            .await
            .map_err(|error| VoiceError::Failed(format!("resampling failed: {error}")))?
    };
    let pcm = to_pcm16(&audio);
    match encoding {
        AudioEncoding::Pcm16 => Ok(nexent_core::voice::pcm16_bytes(&pcm)),
        AudioEncoding::Mp3 => encode_mp3(lame, &pcm, sample_rate).await.map_err(VoiceError::Failed),
    }
}

/// The samples and rate of a 16-bit PCM mono WAV file (as `espeak-ng --stdout` writes it, whose sizes
/// may be left at their streaming maximum: the data runs to the end of the bytes).
pub fn parse_wav_mono16(bytes: &[u8]) -> Result<(Vec<f32>, u32), String> {
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err("not a WAV file".into());
    }
    let mut at = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while let (Some(id), Some(size)) = (bytes.get(at..at + 4), u32_at(at + 4)) {
        let body = at + 8;
        match id {
            b"fmt " => {
                let fields = (u16_at(body), u16_at(body + 2), u32_at(body + 4), u16_at(body + 14));
                let (Some(tag), Some(channels), Some(rate), Some(bits)) = fields else {
                    return Err("a truncated WAV format".into());
                };
                format = Some((tag, channels, rate, bits));
            }
            b"data" => {
                let Some((1, 1, rate, 16)) = format else {
                    return Err(format!("not 16-bit PCM mono: {format:?}"));
                };
                let end = body.saturating_add(size as usize).min(bytes.len());
                let samples = bytes[body..end]
                    .chunks_exact(2)
                    .map(|pair| f32::from(i16::from_le_bytes([pair[0], pair[1]])) / 32768.0)
                    .collect();
                return Ok((samples, rate));
            }
            _ => {}
        }
        at = body.saturating_add(size as usize + (size as usize & 1));
    }
    Err("a WAV file without audio".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frequency: f64, rate: u32, seconds: f64) -> Vec<f32> {
        (0..(f64::from(rate) * seconds) as usize)
            .map(|index| (2.0 * std::f64::consts::PI * frequency * index as f64 / f64::from(rate)).sin() as f32 * 0.5)
            .collect()
    }

    fn rms(samples: &[f32]) -> f32 {
        (samples.iter().map(|sample| sample * sample).sum::<f32>() / samples.len() as f32).sqrt()
    }

    #[test]
    fn a_tone_keeps_its_length_and_loudness_across_rates() {
        let input = tone(440.0, 22_050, 1.0);
        let output = resample(&input, 22_050, 16_000);
        assert_eq!(output.len(), 16_000);
        let middle = &output[1000..15_000];
        assert!((rms(middle) - rms(&input)).abs() < 0.01, "{} vs {}", rms(middle), rms(&input));
        // Still 440 Hz: the same number of sign changes per second (880), within one.
        let crossings = middle.windows(2).filter(|pair| (pair[0] >= 0.0) != (pair[1] >= 0.0)).count();
        let expected = 880.0 * middle.len() as f64 / 16_000.0;
        assert!((crossings as f64 - expected).abs() <= 2.0, "{crossings} vs {expected}");
    }

    #[test]
    fn content_above_the_new_nyquist_frequency_is_removed_not_folded_back() {
        // 10 kHz exists at 22.05 kHz but not at 16 kHz (Nyquist 8 kHz): it must vanish, not alias to 6 kHz.
        let output = resample(&tone(10_000.0, 22_050, 1.0), 22_050, 16_000);
        assert!(rms(&output[1000..15_000]) < 0.01, "{}", rms(&output[1000..15_000]));
    }

    #[test]
    fn samples_clip_to_sixteen_bits() {
        assert_eq!(to_pcm16(&[0.0, 1.5, -2.0, 0.5]), vec![0, 32767, -32767, 16384]);
    }
}
