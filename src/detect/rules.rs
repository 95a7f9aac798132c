//! The user's say per instrument: instruments never reported, and
//! thresholds that replace the model's. Given by name in the configuration
//! ([`Overrides`]), they are resolved against one model's labels into
//! [`Rules`], refusing a name the model does not know.

use crate::model::LabelSpec;

/// Per-instrument overrides, by name, as the configuration gives them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Never reported and never ON; still scored.
    pub exclude: Vec<String>,
    /// Thresholds in (0, 1] that replace the model's, by instrument.
    pub thresholds: Vec<(String, f32)>,
}

/// Why overrides do not fit the model.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("`{key}`: the model has no instrument {name:?} (it has: {known})")]
    Unknown {
        key: String,
        name: String,
        known: String,
    },
}

/// What is in force for each of a model's labels, in label order.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// The model's labels with the thresholds in force.
    pub labels: Vec<LabelSpec>,
    pub excluded: Vec<bool>,
    /// The model's own threshold, where the user replaced it.
    pub replaced: Vec<Option<f32>>,
}

impl Rules {
    /// The model's labels as they are.
    pub fn of_model(labels: &[LabelSpec]) -> Rules {
        Rules {
            labels: labels.to_vec(),
            excluded: vec![false; labels.len()],
            replaced: vec![None; labels.len()],
        }
    }

    /// `overrides` applied to the model's `labels`.
    pub fn resolve(labels: &[LabelSpec], overrides: &Overrides) -> Result<Rules, RulesError> {
        let mut rules = Rules::of_model(labels);
        let find = |key: String, name: &str| {
            labels
                .iter()
                .position(|l| l.name == name)
                .ok_or_else(|| RulesError::Unknown {
                    key,
                    name: name.to_string(),
                    known: labels
                        .iter()
                        .map(|l| l.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        };
        for name in &overrides.exclude {
            let i = find("instruments.exclude".into(), name)?;
            rules.excluded[i] = true;
        }
        for (name, threshold) in &overrides.thresholds {
            let i = find(format!("instruments.thresholds.{name}"), name)?;
            rules.replaced[i] = Some(rules.labels[i].threshold);
            rules.labels[i].threshold = *threshold;
        }
        Ok(rules)
    }

    /// Whether instrument `i` may be reported.
    pub fn reported(&self, i: usize) -> bool {
        !self.excluded[i]
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::labels;
    use super::*;

    #[test]
    fn overrides_replace_thresholds_and_exclude_by_name() {
        let overrides = Overrides {
            exclude: vec!["cello".into()],
            thresholds: vec![("piano".into(), 0.8)],
        };
        let rules = Rules::resolve(&labels(), &overrides).unwrap();
        let thresholds: Vec<f32> = rules.labels.iter().map(|l| l.threshold).collect();
        assert_eq!(thresholds, [0.8, 0.2, 0.3]);
        assert_eq!(rules.replaced, [Some(0.5), None, None]);
        assert_eq!(rules.excluded, [false, false, true]);
        assert_eq!(
            Rules::resolve(&labels(), &Overrides::default()).unwrap(),
            Rules::of_model(&labels())
        );
    }

    #[test]
    fn a_name_the_model_does_not_know_is_refused_with_the_key() {
        let e = Rules::resolve(
            &labels(),
            &Overrides {
                exclude: vec!["tuba".into()],
                ..Overrides::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("instruments.exclude")
                && e.contains("\"tuba\"")
                && e.contains("piano, violin, cello"),
            "{e}"
        );
        let e = Rules::resolve(
            &labels(),
            &Overrides {
                thresholds: vec![("celo".into(), 0.4)],
                ..Overrides::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("instruments.thresholds.celo"), "{e}");
    }
}
