//! Which send kinds the workload mixes (`--kinds send,causal,ordered,safe,query`).

use osiris_core::SendKind;

/// The send kinds a run's workload uses; every one by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kinds {
    pub send: bool,
    pub causal: bool,
    pub ordered: bool,
    pub safe: bool,
    pub query: bool,
}

impl Default for Kinds {
    fn default() -> Self {
        Kinds::ALL
    }
}

impl Kinds {
    pub const ALL: Kinds = Kinds {
        send: true,
        causal: true,
        ordered: true,
        safe: true,
        query: true,
    };
    pub const NAMES: [&'static str; 5] = ["send", "causal", "ordered", "safe", "query"];

    /// Parse a comma-separated list of kind names.
    pub fn parse(list: &str) -> Result<Kinds, String> {
        let mut kinds = Kinds {
            send: false,
            causal: false,
            ordered: false,
            safe: false,
            query: false,
        };
        for name in list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            match name {
                "send" => kinds.send = true,
                "causal" => kinds.causal = true,
                "ordered" => kinds.ordered = true,
                "safe" => kinds.safe = true,
                "query" => kinds.query = true,
                _ => {
                    return Err(format!(
                        "unknown kind `{name}`; any of: {}",
                        Kinds::NAMES.join(",")
                    ))
                }
            }
        }
        if kinds.multicasts().is_empty() && !kinds.query {
            return Err("name at least one kind".to_string());
        }
        Ok(kinds)
    }

    /// The multicast kinds, in a fixed order (FIFO alone if none is named).
    pub fn multicasts(&self) -> Vec<SendKind> {
        let all = [
            (self.send, SendKind::Fifo),
            (self.causal, SendKind::Causal),
            (self.ordered, SendKind::Ordered),
            (self.safe, SendKind::Safe),
        ];
        all.iter()
            .filter(|(on, _)| *on)
            .map(|(_, kind)| *kind)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_rejects_unknown_names() {
        assert_eq!(
            Kinds::parse("send,causal,ordered,safe,query"),
            Ok(Kinds::ALL)
        );
        let safe = Kinds::parse("safe").unwrap();
        assert_eq!(safe.multicasts(), vec![SendKind::Safe]);
        assert!(!safe.query);
        assert!(Kinds::parse("fifo").is_err());
        assert!(Kinds::parse("").is_err());
    }
}
