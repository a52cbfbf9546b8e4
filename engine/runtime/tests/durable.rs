//! Durable SafeSend in the runtime: real log files in a temporary
//! directory, nodes stopped and started again from them. (The test that
//! SIGKILLs every member mid-stream is tools/tests/durable.rs.)

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use osiris_runtime::{Group, Node, RuntimeConfig, RuntimeError};

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("osiris-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(node: u32, seeds: &[SocketAddr], dir: &Path) -> RuntimeConfig {
    let mut config = RuntimeConfig::new(node, "127.0.0.1:0".parse().unwrap());
    config.core.bootstrap = seeds.is_empty();
    config.core.seeds = seeds.iter().map(ToString::to_string).collect();
    config.durable_dir = Some(dir.to_path_buf());
    config
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

type Payloads = Arc<Mutex<Vec<Vec<u8>>>>;

/// One member of the durable group "ledger".
struct Member {
    node: Node,
    group: Group,
    recovered: Vec<Vec<u8>>,
    delivered: Payloads,
    view_size: Arc<Mutex<usize>>,
}

fn start(id: u32, seeds: &[SocketAddr], dir: &Path) -> Member {
    let node = Node::start(config(id, seeds, dir)).unwrap();
    let recovered: Payloads = Arc::default();
    let delivered: Payloads = Arc::default();
    let view_size: Arc<Mutex<usize>> = Arc::default();
    let (into_recovered, into_delivered, into_size) = (
        Arc::clone(&recovered),
        Arc::clone(&delivered),
        Arc::clone(&view_size),
    );
    let group = node
        .group("ledger")
        .durable(move |messages| {
            let mut list = into_recovered.lock().unwrap();
            list.extend(messages.iter().map(|m| m.payload.clone()));
        })
        .on_view(move |view| *into_size.lock().unwrap() = view.members.len())
        .on_message(move |message| {
            into_delivered
                .lock()
                .unwrap()
                .push(message.payload.to_vec());
        })
        .join()
        .unwrap();
    let recovered = recovered.lock().unwrap().clone();
    Member {
        node,
        group,
        recovered,
        delivered,
        view_size,
    }
}

fn start_three(dirs: &[TempDir]) -> Vec<Member> {
    let first = start(1, &[], &dirs[0].0);
    let seed = [first.node.local_addr()];
    let mut members = vec![first];
    members.extend((2..=3).map(|id| start(id, &seed, &dirs[id as usize - 1].0)));
    for member in &members {
        wait_until("the three-member view", || {
            *member.view_size.lock().unwrap() == 3
        });
    }
    members
}

fn safe_send_and_wait(members: &[Member], per_member: u32, round: u32) -> Vec<Vec<u8>> {
    for index in 0..per_member {
        for (rank, member) in members.iter().enumerate() {
            member
                .group
                .safe_send(format!("r{round}-m{rank}-{index}").as_bytes())
                .unwrap();
        }
    }
    let expected = members.len() * per_member as usize;
    for member in members {
        wait_until("every SafeSend delivered", || {
            member.delivered.lock().unwrap().len() >= expected
        });
    }
    let order = members[0].delivered.lock().unwrap().clone();
    for member in members {
        assert_eq!(*member.delivered.lock().unwrap(), order, "total order");
    }
    order
}

#[test]
fn a_durable_group_restarts_with_every_safe_send_it_delivered() {
    let dirs: Vec<TempDir> = (1..=3)
        .map(|id| TempDir::new(&format!("durable-restart-{id}")))
        .collect();
    let members = start_three(&dirs);
    assert!(members.iter().all(|m| m.recovered.is_empty()));
    let first_round = safe_send_and_wait(&members, 100, 1);
    drop(members);

    // Every member recovers the whole delivered sequence, in order.
    let members = start_three(&dirs);
    for member in &members {
        assert_eq!(member.recovered, first_round);
    }
    // And keeps it across a second restart, after more traffic.
    let second_round = safe_send_and_wait(&members, 10, 2);
    drop(members);
    let members = start_three(&dirs);
    let mut both = first_round;
    both.extend(second_round);
    for member in &members {
        assert_eq!(member.recovered, both);
    }
}

#[test]
fn a_torn_tail_is_cut_off_and_the_synced_records_recovered() {
    let dir = TempDir::new("durable-torn");
    let member = start(1, &[], &dir.0);
    wait_until("the founding view", || {
        *member.view_size.lock().unwrap() == 1
    });
    let delivered = safe_send_and_wait(std::slice::from_ref(&member), 50, 1);
    drop(member);

    let log = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "osiris-log"))
        .expect("the group's log file");
    let good_len = std::fs::metadata(&log).unwrap().len();
    // A record frame announcing 100 bytes, followed by only 10 of them: a
    // write the crash cut short.
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(&100u32.to_le_bytes()).unwrap();
    file.write_all(&[0xab; 14]).unwrap();
    drop(file);

    let member = start(1, &[], &dir.0);
    assert_eq!(member.recovered, delivered);
    // Recovery removed the torn bytes from the file; the rewrite that
    // followed holds the same sequence.
    let after = std::fs::metadata(&log).unwrap().len();
    assert!(
        after <= good_len,
        "torn tail left in the file: {after} > {good_len}"
    );
}

#[test]
fn a_durable_group_needs_a_durable_dir() {
    let mut config = RuntimeConfig::new(1, "127.0.0.1:0".parse().unwrap());
    config.core.bootstrap = true;
    let node = Node::start(config).unwrap();
    let error = node.group("ledger").durable(|_| {}).join().unwrap_err();
    assert!(
        matches!(&error, RuntimeError::Config(text) if text.contains("durable_dir")),
        "{error}"
    );
}

#[test]
fn a_log_that_is_not_a_log_is_refused_and_left_alone() {
    let dir = TempDir::new("durable-not-a-log");
    let member = start(1, &[], &dir.0);
    drop(member);
    let log = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "osiris-log"))
        .unwrap();
    std::fs::write(&log, b"not a log at all").unwrap();
    let mut config = config(1, &[], &dir.0);
    config.core.bootstrap = true;
    let node = Node::start(config).unwrap();
    let error = node.group("ledger").durable(|_| {}).join().unwrap_err();
    assert!(matches!(error, RuntimeError::Log(_)), "{error}");
    assert_eq!(std::fs::read(&log).unwrap(), b"not a log at all");
}

#[test]
fn a_joiner_logs_the_history_it_loads_and_recovers_it_alone() {
    let dirs: Vec<TempDir> = (1..=2)
        .map(|id| TempDir::new(&format!("durable-joiner-{id}")))
        .collect();
    let founder = start(1, &[], &dirs[0].0);
    wait_until("the founding view", || {
        *founder.view_size.lock().unwrap() == 1
    });
    let before = safe_send_and_wait(std::slice::from_ref(&founder), 20, 1);
    let joiner = start(2, &[founder.node.local_addr()], &dirs[1].0);
    wait_until("the two-member view", || {
        *joiner.view_size.lock().unwrap() == 2
    });
    // Deliveries are counted from zero again: the joiner saw none before.
    founder.delivered.lock().unwrap().clear();
    let after = safe_send_and_wait(&[founder, joiner], 5, 2);
    // The joiner restarts alone, from its own log only.
    let joiner = start(2, &[], &dirs[1].0);
    let mut everything = before;
    everything.extend(after);
    assert_eq!(joiner.recovered, everything);
}
