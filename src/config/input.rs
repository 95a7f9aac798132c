//! The `[input]` keys: where audio comes from (a device, a WAV file, or raw
//! PCM on standard input, with its format), which channel is analysed, and
//! the input's name.

use super::layers::Layers;
use super::{Channel, ConfigError, Encoding, Input, RawFormat};
use std::path::{Path, PathBuf};

/// Most channels a raw stream may interleave.
const MAX_CHANNELS: i64 = 64;
/// Longest `input.name`, in characters.
const MAX_NAME: usize = 100;

impl Layers {
    pub(super) fn input(&self) -> Result<(Input, Channel), ConfigError> {
        let input = match self.text("input", "device") {
            None | Some("default") => Input::Default,
            Some("-") => Input::Stdin(self.raw_format()?),
            Some(d) if d.to_lowercase().ends_with(".wav") || Path::new(d).is_file() => {
                Input::File(PathBuf::from(d))
            }
            Some(d) => d
                .parse()
                .map(Input::Index)
                .unwrap_or_else(|_| Input::Device(d.to_string())),
        };
        if !matches!(input, Input::Stdin(_)) {
            // Said for a device or file, they would be ignored: refused.
            for key in ["format", "channels"] {
                let set = match key {
                    "format" => self.text("input", key).is_some(),
                    _ => self.count("input", key).is_some_and(|c| c != 0),
                };
                if set {
                    return Err(ConfigError::Invalid {
                        key: if key == "format" {
                            "input.format"
                        } else {
                            "input.channels"
                        },
                        value: format!("{:?}", self.text("input", "device").unwrap_or("default")),
                        reason: "only raw PCM on standard input (`--input -`) takes it; \
                                 a device or WAV file says its own"
                            .into(),
                    });
                }
            }
        }
        let channel = match self.text("input", "channel") {
            None | Some("mix") => Channel::Mix,
            Some(c) => match c.parse::<u16>() {
                Ok(n) if n >= 1 => Channel::Only(n),
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "input.channel",
                        value: format!("{c:?}"),
                        reason: "use \"mix\" or a channel number from 1".into(),
                    })
                }
            },
        };
        if let (Input::Stdin(raw), Channel::Only(n)) = (&input, channel) {
            if n > raw.channels {
                return Err(ConfigError::Invalid {
                    key: "input.channel",
                    value: n.to_string(),
                    reason: format!(
                        "the stream has {} channel(s) (input.channels)",
                        raw.channels
                    ),
                });
            }
        }
        Ok((input, channel))
    }

    /// `input.format`, `input.sample_rate` (required) and `input.channels`
    /// of a raw stream.
    fn raw_format(&self) -> Result<RawFormat, ConfigError> {
        let encoding = match self.text("input", "format").unwrap_or("s16le") {
            "s16le" => Encoding::S16,
            "s32le" => Encoding::S32,
            "f32le" => Encoding::F32,
            other => {
                return Err(ConfigError::Invalid {
                    key: "input.format",
                    value: format!("{other:?}"),
                    reason: "use s16le, s32le or f32le (ffmpeg's -f names)".into(),
                })
            }
        };
        let Some(sample_rate) = self.optional_count("input.sample_rate", 1000..=768_000)? else {
            return Err(ConfigError::Invalid {
                key: "input.sample_rate",
                value: "0".into(),
                reason: "raw PCM on standard input (`--input -`) needs its rate, \
                         e.g. --sample-rate 22050"
                    .into(),
            });
        };
        let channels = match self.count("input", "channels") {
            None | Some(0) => 1,
            Some(n @ 1..=MAX_CHANNELS) => n as u16,
            Some(n) => {
                return Err(ConfigError::Invalid {
                    key: "input.channels",
                    value: n.to_string(),
                    reason: format!("must be from 1 to {MAX_CHANNELS}"),
                })
            }
        };
        Ok(RawFormat {
            encoding,
            sample_rate,
            channels,
        })
    }

    /// `input.name`, or the device id.
    pub(super) fn input_name(&self, device_id: &str) -> Result<String, ConfigError> {
        match self.text("input", "name") {
            None => Ok(device_id.to_string()),
            Some(name) if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) => {
                Err(ConfigError::Invalid {
                    key: "input.name",
                    value: format!("{name:?}"),
                    reason: format!(
                        "must be at most {MAX_NAME} characters, none of them control characters"
                    ),
                })
            }
            Some(name) => Ok(name.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(list: &[(&str, &str)]) -> Result<(Input, Channel, String), ConfigError> {
        let layers = Layers::default()
            .env(list.iter().map(|(k, v)| (k.to_string(), v.to_string())))?
            .clone();
        let (input, channel) = layers.input()?;
        Ok((input, channel, layers.input_name("kitchen")?))
    }

    #[test]
    fn a_dash_is_raw_pcm_on_standard_input_with_its_format() {
        let (i, _, name) = input(&[
            ("TUTTI_INPUT_DEVICE", "-"),
            ("TUTTI_INPUT_SAMPLE_RATE", "48000"),
            ("TUTTI_INPUT_FORMAT", "f32le"),
            ("TUTTI_INPUT_CHANNELS", "2"),
        ])
        .unwrap();
        assert_eq!(
            i,
            Input::Stdin(RawFormat {
                encoding: Encoding::F32,
                sample_rate: 48000,
                channels: 2
            })
        );
        assert_eq!(name, "kitchen");
        let (i, _, _) = input(&[
            ("TUTTI_INPUT_DEVICE", "-"),
            ("TUTTI_INPUT_SAMPLE_RATE", "22050"),
        ])
        .unwrap();
        assert_eq!(
            i,
            Input::Stdin(RawFormat {
                encoding: Encoding::S16,
                sample_rate: 22050,
                channels: 1
            })
        );
        let (_, _, name) = input(&[("TUTTI_INPUT_NAME", "Front door camera")]).unwrap();
        assert_eq!(name, "Front door camera");
    }

    #[test]
    fn a_raw_stream_without_its_rate_or_with_a_bad_format_is_refused() {
        let err = |list: &[(&str, &str)]| input(list).unwrap_err().to_string();
        let e = err(&[("TUTTI_INPUT_DEVICE", "-")]);
        assert!(
            e.contains("input.sample_rate") && e.contains("--sample-rate"),
            "{e}"
        );
        let e = err(&[
            ("TUTTI_INPUT_DEVICE", "-"),
            ("TUTTI_INPUT_SAMPLE_RATE", "22050"),
            ("TUTTI_INPUT_FORMAT", "s24le"),
        ]);
        assert!(e.contains("input.format") && e.contains("s24le"), "{e}");
        let e = err(&[
            ("TUTTI_INPUT_DEVICE", "-"),
            ("TUTTI_INPUT_SAMPLE_RATE", "22050"),
            ("TUTTI_INPUT_CHANNELS", "2"),
            ("TUTTI_INPUT_CHANNEL", "3"),
        ]);
        assert!(e.contains("input.channel") && e.contains('3'), "{e}");
        let e = err(&[("TUTTI_INPUT_FORMAT", "f32le")]);
        assert!(e.contains("input.format") && e.contains("--input -"), "{e}");
        let e = err(&[("TUTTI_INPUT_NAME", "a\nb")]);
        assert!(e.contains("input.name"), "{e}");
    }
}
