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
