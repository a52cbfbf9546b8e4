//! Options named on the command line (`--mix`, `--durable`): one way to
//! parse them and to say which names there are.

use std::fmt::Debug;

/// A closed set of values, each with a command-line name.
pub trait Named: Copy + PartialEq + Debug + 'static {
    /// What the option is called in an error message.
    const WHAT: &'static str;

    fn all() -> &'static [Self];

    fn name(self) -> &'static str;

    fn parse(name: &str) -> Option<Self> {
        Self::all()
            .iter()
            .copied()
            .find(|value| value.name() == name)
    }

    /// `parse`, with the message a command line shows for a bad name.
    fn parse_arg(name: &str) -> Result<Self, String> {
        Self::parse(name).ok_or_else(|| {
            let names: Vec<&str> = Self::all().iter().map(|value| value.name()).collect();
            format!(
                "unknown {} `{name}`; one of: {}",
                Self::WHAT,
                names.join(", ")
            )
        })
    }
}

/// `Display` as the command-line name (a blanket `impl<T: Named> Display
/// for T` is not allowed: `Display` is another crate's trait).
macro_rules! display_by_name {
    ($named:ty) => {
        impl std::fmt::Display for $named {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::names::Named::name(*self))
            }
        }
    };
}
pub(crate) use display_by_name;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, Mix};

    fn assert_round_trip<T: Named + std::fmt::Display>() {
        for value in T::all() {
            assert_eq!(T::parse(value.name()), Some(*value));
            assert_eq!(value.to_string(), value.name());
        }
        assert_eq!(T::parse("nope"), None);
        assert!(T::parse_arg("nope").is_err_and(|message| message.contains(T::all()[0].name())));
    }

    #[test]
    fn names_round_trip() {
        assert_round_trip::<Mix>();
        assert_round_trip::<Durability>();
    }
}
