//! Where members live: the domain view's `ip:port` addresses, parsed once per
//! view install, plus addresses learned from frame sources for nodes that are
//! not (yet) in the view (a joiner waiting for its commit, an excluded node
//! that must hear so).

use std::collections::HashMap;
use std::net::SocketAddr;

use osiris_core::{DomainView, MemberId};

/// Learned addresses kept at most (frames from strangers must not grow memory).
const LEARNED_MAX: usize = 1024;

#[derive(Debug)]
pub(crate) struct AddressBook {
    members: HashMap<MemberId, SocketAddr>,
    learned: HashMap<MemberId, SocketAddr>,
    seeds: Vec<Option<SocketAddr>>,
    /// View members whose address text does not parse (reported once per view).
    pub unparsable: usize,
}

impl Default for AddressBook {
    /// Sized up front: learning an address on the data path never allocates.
    fn default() -> Self {
        AddressBook {
            members: HashMap::with_capacity(64),
            learned: HashMap::with_capacity(LEARNED_MAX),
            seeds: Vec::new(),
            unparsable: 0,
        }
    }
}

impl AddressBook {
    pub fn install(&mut self, view: &DomainView) {
        self.members.clear();
        self.unparsable = 0;
        for info in &view.members {
            match info.addr.parse() {
                Ok(address) => {
                    self.members.insert(info.id, address);
                    self.learned.remove(&info.id);
                }
                Err(_) => self.unparsable += 1,
            }
        }
    }

    /// A frame from `sender` arrived from `source`. Cheap when the sender is
    /// a view member at its known address (the common case: one lookup).
    pub fn learn(&mut self, sender: MemberId, source: SocketAddr) {
        if self.members.get(&sender) == Some(&source) {
            return;
        }
        if self.members.contains_key(&sender) {
            // A member's address comes from the agreed view only: a forged
            // header must not redirect traffic meant for it.
            return;
        }
        if self.learned.len() >= LEARNED_MAX && !self.learned.contains_key(&sender) {
            self.learned.clear();
        }
        self.learned.insert(sender, source);
    }

    pub fn member(&self, member: MemberId) -> Option<SocketAddr> {
        self.members
            .get(&member)
            .or_else(|| self.learned.get(&member))
            .copied()
    }

    /// The address of seed `index` in `seeds` (the core's list, which can grow).
    pub fn seed(&mut self, index: usize, seeds: &[String]) -> Option<SocketAddr> {
        if self.seeds.len() != seeds.len() {
            self.seeds = seeds.iter().map(|text| text.parse().ok()).collect();
        }
        self.seeds.get(index).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osiris_core::{MemberInfo, ViewId};

    #[test]
    fn view_addresses_win_over_learned_ones() {
        let a = MemberId::new(1, 1);
        let b = MemberId::new(2, 1);
        let mut book = AddressBook::default();
        let view = DomainView {
            id: ViewId(1),
            members: vec![
                MemberInfo {
                    id: a,
                    addr: "127.0.0.1:7001".into(),
                },
                MemberInfo {
                    id: b,
                    addr: "not an address".into(),
                },
            ],
        };
        book.install(&view);
        assert_eq!(book.unparsable, 1);
        book.learn(a, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(book.member(a), Some("127.0.0.1:7001".parse().unwrap()));
        let joiner = MemberId::new(3, 1);
        book.learn(joiner, "127.0.0.1:7003".parse().unwrap());
        assert_eq!(book.member(joiner), Some("127.0.0.1:7003".parse().unwrap()));
        assert_eq!(
            book.seed(1, &["x".into(), "127.0.0.1:1".into()]),
            Some("127.0.0.1:1".parse().unwrap())
        );
        assert_eq!(book.seed(0, &["x".into(), "127.0.0.1:1".into()]), None);
    }
}
