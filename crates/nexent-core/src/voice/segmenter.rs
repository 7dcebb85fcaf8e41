//! Cuts a live 16 kHz stream into utterances with an energy voice-activity detector.
//!
//! Whisper is built for 30-second windows; feeding it every chunk of a stream would pay that window on each
//! chunk and make it hallucinate on silence. The segmenter keeps silence out entirely, opens an utterance
//! at the first loud frame (with a little audio before it, so the first consonant is kept), and closes it
//! after a pause (a short one once the utterance is a few seconds long, a long one always) or at a length
//! whisper handles well in one pass.
//!
//! Loud means above both an absolute floor and a multiple of the tracked background level, so a quiet
//! room and a noisy fan both work. Pure logic: samples in, utterances out.

/// 30 ms at 16 kHz: the detector's unit.
pub const FRAME_SAMPLES: usize = 480;
/// Audio kept before the first loud frame (300 ms).
const PRE_ROLL_FRAMES: usize = 10;
/// A pause this long ends an utterance of at least [`MIN_CLOSED_SAMPLES`] (600 ms).
const CLOSING_SILENCE_FRAMES: usize = 20;
/// A pause this long ends any utterance (1.5 s).
const LONG_SILENCE_FRAMES: usize = 50;
/// Utterances shorter than this (8 s) run on across short pauses: whisper hears a phrase far better in the
/// context of its sentence than alone (tiny.en heard jfk.wav's "ask not" as "asked not" when the first
/// 4.8 s were cut off at a pause).
const MIN_CLOSED_SAMPLES: usize = 8 * 16_000;
/// Silence kept at an utterance's end (210 ms).
const TRAILING_SILENCE_FRAMES: usize = 7;
/// Utterances are cut at 25 s, inside whisper's 30-second window.
pub const MAX_UTTERANCE_SAMPLES: usize = 25 * 16_000;
/// Utterances with fewer loud frames than this (a click, a cough: 150 ms) are dropped.
const MIN_SPEECH_FRAMES: usize = 5;
/// RMS (of samples scaled to ±1) below which nothing is speech: about -46 dBFS.
const ABSOLUTE_THRESHOLD: f32 = 0.005;
/// Speech is this many times louder than the background.
const BACKGROUND_FACTOR: f32 = 3.0;
/// The background level never counts as louder than this (-26 dBFS), so loud speech always counts.
const BACKGROUND_CAP: f32 = 0.05;

#[derive(Debug)]
pub struct Segmenter {
    /// Samples not yet making a whole frame.
    partial_frame: Vec<i16>,
    pre_roll: std::collections::VecDeque<Vec<i16>>,
    utterance: Vec<i16>,
    in_speech: bool,
    speech_frames: usize,
    silent_run: usize,
    background: Option<f32>,
}

impl Default for Segmenter {
    fn default() -> Self {
        Self::new()
    }
}

impl Segmenter {
    pub fn new() -> Self {
        Self {
            partial_frame: Vec::with_capacity(FRAME_SAMPLES),
            pre_roll: std::collections::VecDeque::with_capacity(PRE_ROLL_FRAMES + 1),
            utterance: Vec::new(),
            in_speech: false,
            speech_frames: 0,
            silent_run: 0,
            background: None,
        }
    }

    /// Adds samples; returns the utterances they closed, in order.
    pub fn push(&mut self, samples: &[i16]) -> Vec<Vec<i16>> {
        let mut closed = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let wanted = FRAME_SAMPLES - self.partial_frame.len();
            let take = wanted.min(rest.len());
            self.partial_frame.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial_frame.len() == FRAME_SAMPLES {
                let frame = std::mem::replace(&mut self.partial_frame, Vec::with_capacity(FRAME_SAMPLES));
                if let Some(utterance) = self.push_frame(frame) {
                    closed.push(utterance);
                }
            }
        }
        closed
    }

    /// Ends the stream: the open utterance (with any partial frame), if it holds speech.
    pub fn finish(&mut self) -> Option<Vec<i16>> {
        if self.in_speech {
            let tail = std::mem::take(&mut self.partial_frame);
            self.utterance.extend_from_slice(&tail);
        }
        self.partial_frame.clear();
        self.close()
    }

    /// The utterance being spoken now, if any (for partial transcripts).
    pub fn open_utterance(&self) -> Option<&[i16]> {
        (self.in_speech && self.speech_frames >= MIN_SPEECH_FRAMES).then_some(&self.utterance[..])
    }

    fn push_frame(&mut self, frame: Vec<i16>) -> Option<Vec<i16>> {
        let level = rms(&frame);
        let background = *self.background.get_or_insert(level.min(ABSOLUTE_THRESHOLD));
        let loud = level > ABSOLUTE_THRESHOLD.max(background * BACKGROUND_FACTOR);
        // The background falls fast and rises slowly: the gaps between syllables pull it down, so speech
        // does not raise the bar for itself, while a steady fan lifts it within a second or two.
        let followed =
            if level < background { background * 0.7 + level * 0.3 } else { background * 0.995 + level * 0.005 };
        self.background = Some(followed.min(BACKGROUND_CAP));
        if !self.in_speech {
            if loud {
                self.in_speech = true;
                self.speech_frames = 1;
                self.silent_run = 0;
                self.utterance = self.pre_roll.drain(..).flatten().collect();
                self.utterance.extend_from_slice(&frame);
            } else {
                self.pre_roll.push_back(frame);
                if self.pre_roll.len() > PRE_ROLL_FRAMES {
                    self.pre_roll.pop_front();
                }
            }
            return None;
        }
        self.utterance.extend_from_slice(&frame);
        if loud {
            self.speech_frames += 1;
            self.silent_run = 0;
        } else {
            self.silent_run += 1;
        }
        let long_enough = self.utterance.len() >= MIN_CLOSED_SAMPLES + self.silent_run * FRAME_SAMPLES;
        if (self.silent_run >= CLOSING_SILENCE_FRAMES && long_enough) || self.silent_run >= LONG_SILENCE_FRAMES {
            let keep = self.utterance.len() - (self.silent_run - TRAILING_SILENCE_FRAMES) * FRAME_SAMPLES;
            // The silence cut off is the next utterance's pre-roll.
            let silence = self.utterance.split_off(keep);
            let closed = self.close();
            for frame in silence.chunks(FRAME_SAMPLES).rev().take(PRE_ROLL_FRAMES).rev() {
                self.pre_roll.push_back(frame.to_vec());
            }
            return closed;
        }
        if self.utterance.len() + FRAME_SAMPLES > MAX_UTTERANCE_SAMPLES {
            return self.close();
        }
        None
    }

    fn close(&mut self) -> Option<Vec<i16>> {
        let was_speech = self.in_speech && self.speech_frames >= MIN_SPEECH_FRAMES;
        self.in_speech = false;
        self.speech_frames = 0;
        self.silent_run = 0;
        let utterance = std::mem::take(&mut self.utterance);
        was_speech.then_some(utterance)
    }
}

fn rms(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return 0.0;
    }
    let sum: f64 = frame.iter().map(|&sample| (f64::from(sample) / 32768.0).powi(2)).sum();
    (sum / frame.len() as f64).sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(seconds: f32, amplitude: f32) -> Vec<i16> {
        let count = (seconds * 16_000.0) as usize;
        (0..count)
            .map(|index| {
                ((index as f32 * 2.0 * std::f32::consts::PI * 220.0 / 16_000.0).sin() * amplitude * 32767.0) as i16
            })
            .collect()
    }

    /// A tone whose loudness rises and falls four times a second, as syllables do.
    fn syllables(seconds: f32, amplitude: f32) -> Vec<i16> {
        tone(seconds, amplitude)
            .into_iter()
            .enumerate()
            .map(|(index, sample)| {
                let envelope = (index as f32 * 2.0 * std::f32::consts::PI * 4.0 / 16_000.0).sin().abs();
                (f32::from(sample) * envelope) as i16
            })
            .collect()
    }

    fn silence(seconds: f32) -> Vec<i16> {
        vec![0; (seconds * 16_000.0) as usize]
    }

    #[test]
    fn silence_alone_is_no_utterance() {
        let mut segmenter = Segmenter::new();
        assert!(segmenter.push(&silence(5.0)).is_empty());
        assert!(segmenter.open_utterance().is_none());
        assert!(segmenter.finish().is_none());
    }

    #[test]
    fn a_pause_closes_an_utterance_and_keeps_a_little_audio_around_it() {
        let mut segmenter = Segmenter::new();
        let mut audio = silence(1.0);
        audio.extend(syllables(9.0, 0.3));
        audio.extend(silence(1.0));
        let closed = segmenter.push(&audio);
        assert_eq!(closed.len(), 1);
        let seconds = closed[0].len() as f32 / 16_000.0;
        // 9 s of speech, 300 ms before it, about 210 ms after it.
        assert!((9.3..9.7).contains(&seconds), "{seconds}");
        assert!(segmenter.finish().is_none());
    }

    #[test]
    fn two_sentences_make_two_utterances_and_the_last_is_closed_by_finish() {
        let mut segmenter = Segmenter::new();
        let mut audio = syllables(8.5, 0.2);
        audio.extend(silence(0.8));
        audio.extend(syllables(1.5, 0.2));
        let mut closed = Vec::new();
        // Odd chunk sizes, as a network delivers them.
        for chunk in audio.chunks(1237) {
            closed.extend(segmenter.push(chunk));
        }
        assert_eq!(closed.len(), 1);
        assert!(segmenter.open_utterance().is_some());
        let last = segmenter.finish().expect("the second sentence");
        assert!(last.len() >= 24_000, "{}", last.len());
    }

    #[test]
    fn a_short_pause_inside_a_sentence_does_not_cut_it() {
        let mut segmenter = Segmenter::new();
        let mut audio = tone(1.0, 0.2);
        audio.extend(silence(0.3));
        audio.extend(tone(1.0, 0.2));
        assert!(segmenter.push(&audio).is_empty());
        assert!(segmenter.finish().is_some());
    }

    #[test]
    fn a_short_phrase_runs_on_across_a_pause_but_not_across_a_long_one() {
        let mut segmenter = Segmenter::new();
        let mut audio = syllables(1.5, 0.2);
        audio.extend(silence(0.8));
        audio.extend(syllables(1.5, 0.2));
        assert!(segmenter.push(&audio).is_empty(), "two short phrases are one utterance");
        let closed = segmenter.push(&silence(2.0));
        assert_eq!(closed.len(), 1, "a long pause ends it");
        assert!(closed[0].len() > 3 * 16_000);
    }

    #[test]
    fn a_click_is_not_an_utterance() {
        let mut segmenter = Segmenter::new();
        let mut audio = silence(0.5);
        audio.extend(tone(0.06, 0.5));
        audio.extend(silence(1.0));
        assert!(segmenter.push(&audio).is_empty());
        assert!(segmenter.finish().is_none());
    }

    #[test]
    fn endless_speech_is_cut_inside_whispers_window() {
        let mut segmenter = Segmenter::new();
        let closed = segmenter.push(&syllables(60.0, 0.3));
        assert_eq!(closed.len(), 2);
        assert!(closed.iter().all(|utterance| utterance.len() <= MAX_UTTERANCE_SAMPLES));
    }

    #[test]
    fn steady_background_noise_is_not_speech_but_speech_above_it_is() {
        let mut segmenter = Segmenter::new();
        // A fan at about -30 dBFS, above the absolute floor.
        let noise: Vec<i16> = (0..160_000).map(|index| if index % 2 == 0 { 1000 } else { -1000 }).collect();
        // Until the background is learnt (about a second) the fan may open one utterance; no more.
        assert!(segmenter.push(&noise).len() <= 1);
        assert!(segmenter.open_utterance().is_none());
        let mut speech: Vec<i16> =
            syllables(2.0, 0.5).iter().zip(noise.iter().cycle()).map(|(a, b)| a.saturating_add(*b)).collect();
        speech.extend(&noise[..32_000]);
        let closed = segmenter.push(&speech);
        assert_eq!(closed.len(), 1);
    }
}
