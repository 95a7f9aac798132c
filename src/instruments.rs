//! The instruments tutti recognises: the MusicNet set, named by their
//! General MIDI program numbers (1-based, as MusicNet's label files use).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instrument {
    pub name: &'static str,
    /// General MIDI program, 1-based.
    pub program: u8,
}

pub const INSTRUMENTS: [Instrument; 11] = [
    Instrument {
        name: "piano",
        program: 1,
    },
    Instrument {
        name: "harpsichord",
        program: 7,
    },
    Instrument {
        name: "violin",
        program: 41,
    },
    Instrument {
        name: "viola",
        program: 42,
    },
    Instrument {
        name: "cello",
        program: 43,
    },
    Instrument {
        name: "contrabass",
        program: 44,
    },
    Instrument {
        name: "horn",
        program: 61,
    },
    Instrument {
        name: "oboe",
        program: 69,
    },
    Instrument {
        name: "bassoon",
        program: 71,
    },
    Instrument {
        name: "clarinet",
        program: 72,
    },
    Instrument {
        name: "flute",
        program: 74,
    },
];

/// Index in [`INSTRUMENTS`] of a General MIDI program, if it is one of ours.
pub fn index_of_program(program: u32) -> Option<usize> {
    INSTRUMENTS
        .iter()
        .position(|i| u32::from(i.program) == program)
}

pub fn index_of_name(name: &str) -> Option<usize> {
    INSTRUMENTS.iter().position(|i| i.name == name)
}

/// An instrument's display name: "violin" → "Violin".
pub fn title(name: &str) -> String {
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_match_general_midi() {
        let programs: Vec<u8> = INSTRUMENTS.iter().map(|i| i.program).collect();
        assert_eq!(programs, [1, 7, 41, 42, 43, 44, 61, 69, 71, 72, 74]);
        assert_eq!(index_of_program(43), Some(4));
        assert_eq!(index_of_name("flute"), Some(10));
        assert_eq!(index_of_program(2), None);
    }
}
