//! State transfer. At every install, a group whose record lists `loading`
//! members gets a donor: the oldest member not loading. The donor's
//! application is asked for a checkpoint right after the flush delivered the
//! ending epoch and before anything of the new one, so the checkpoint is the
//! state at the view boundary. The donor sends it in chunks, point to point,
//! resending unacknowledged chunks. A loading member delivers nothing of the
//! group until it has loaded the whole state. If the donor fails, the next
//! view still lists the joiner as loading and a new donor starts over at that
//! view's boundary (the joiner drops what it had).

use super::{Dest, Node, Queued};
use crate::id::{GroupId, MemberId, ViewId};
use crate::time::Instant;
use crate::wire::{GroupRecord, Header, Msg};

/// Largest checkpoint a group may have.
pub const STATE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Chunks sent ahead of the joiner's acknowledgement.
const CHUNKS_IN_FLIGHT_MAX: u32 = 8;

/// A joiner's transfer in progress.
#[derive(Debug)]
pub(crate) struct Incoming {
    epoch: ViewId,
    donor: MemberId,
    next: u32,
    state: Vec<u8>,
}

/// A donor's transfer in progress: one checkpoint, several joiners.
#[derive(Debug)]
pub(crate) struct Donation {
    epoch: ViewId,
    state: Vec<u8>,
    chunk_bytes: usize,
    total: u32,
    /// Per joiner: chunks acknowledged.
    acked: Vec<(MemberId, u32)>,
    resend_at: Instant,
}

impl Node {
    /// Decide who gives and who loads state for `record` in epoch `epoch`.
    pub(super) fn plan_transfer(&mut self, record: &GroupRecord, epoch: ViewId) {
        if record.loading.is_empty() {
            return;
        }
        let me = self.me;
        let donor = record
            .members
            .iter()
            .copied()
            .find(|member| !record.loading.contains(member));
        let loading_me = record.loading.contains(&me);
        match donor {
            Some(donor) if donor == me => {
                self.emit(Queued::CheckpointRequested {
                    group: record.id,
                    view_id: record.view_id,
                    epoch,
                });
            }
            Some(donor) if loading_me => {
                let local = self.groups.get_mut(&record.id).expect("installed");
                local.incoming = Some(Incoming {
                    epoch,
                    donor,
                    next: 0,
                    state: Vec::new(),
                });
            }
            Some(_) => {}
            None if loading_me => {
                let buf = self.pool.copy_of(&[]);
                self.emit(Queued::StateLoaded {
                    group: record.id,
                    buf,
                    fresh: true,
                });
                let local = self.groups.get_mut(&record.id).expect("installed");
                local.has_state = true;
            }
            None => {}
        }
    }

    pub(super) fn start_donation(
        &mut self,
        now: Instant,
        group: GroupId,
        epoch: ViewId,
        state: &[u8],
    ) {
        let Some(domain) = &self.domain else { return };
        let Some(record) = domain.groups.get(&group) else {
            return;
        };
        let Some(local) = self.groups.get_mut(&group) else {
            return;
        };
        if local.epoch != epoch {
            return; // a later view superseded this request
        }
        let chunk_bytes = self.config.state_chunk_bytes;
        let total = state.len().div_ceil(chunk_bytes).max(1) as u32;
        let acked = record.loading.iter().map(|member| (*member, 0)).collect();
        local.donation = Some(Donation {
            epoch,
            state: state.to_vec(),
            chunk_bytes,
            total,
            acked,
            resend_at: now,
        });
        self.transfer_tick(now);
    }

    /// Send chunks that are due: the next window for each joiner.
    pub(super) fn transfer_tick(&mut self, now: Instant) {
        let retry = self.config.request_retry;
        let mut chunks: Vec<(MemberId, GroupId, ViewId, u32, u32, std::ops::Range<usize>)> =
            Vec::new();
        for (group, local) in &mut self.groups {
            let Some(donation) = &mut local.donation else {
                continue;
            };
            if now < donation.resend_at {
                continue;
            }
            donation.resend_at = now + retry;
            for (joiner, acked) in &donation.acked {
                let end = (*acked + CHUNKS_IN_FLIGHT_MAX).min(donation.total);
                for index in *acked..end {
                    let start = index as usize * donation.chunk_bytes;
                    let stop = (start + donation.chunk_bytes).min(donation.state.len());
                    chunks.push((
                        *joiner,
                        *group,
                        donation.epoch,
                        index,
                        donation.total,
                        start..stop,
                    ));
                }
            }
        }
        for (joiner, group, epoch, index, total, range) in chunks {
            let local = &self.groups[&group];
            let donation = local.donation.as_ref().expect("donating");
            let header = Header {
                sender: self.me,
                view: epoch,
                group: GroupId::DOMAIN,
                seq: 0,
            };
            let bytes = &donation.state[range];
            let msg = Msg::StateChunk {
                group,
                transfer: epoch.0,
                index,
                total,
                bytes,
            };
            let mut frame = Vec::new();
            let mut writer = crate::wire::FrameWriter::new(&mut frame, &header);
            let pushed = writer.push(&msg);
            debug_assert!(pushed);
            self.outbox.push_back((Dest::Member(joiner), frame));
        }
    }

    pub(super) fn transfer_deadline(&self) -> Instant {
        self.groups
            .values()
            .filter_map(|local| local.donation.as_ref().map(|donation| donation.resend_at))
            .min()
            .unwrap_or(Instant(u64::MAX))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_state_chunk(
        &mut self,
        header: &Header,
        group: GroupId,
        transfer: u64,
        index: u32,
        total: u32,
        bytes: &[u8],
    ) {
        // A wedged member reported in its promise whether it holds state; it
        // must not change that before the next view, which is built on it.
        if self.acceptor.wedged {
            return;
        }
        let Some(local) = self.groups.get_mut(&group) else {
            return;
        };
        let Some(incoming) = &mut local.incoming else {
            return;
        };
        if incoming.epoch.0 != transfer || incoming.donor != header.sender {
            return;
        }
        if index == incoming.next
            && index < total
            && incoming.state.len() + bytes.len() <= STATE_BYTES_MAX
        {
            incoming.state.extend_from_slice(bytes);
            incoming.next += 1;
        }
        let ack = Msg::StateAck {
            group,
            transfer,
            next: incoming.next,
        };
        let donor = incoming.donor;
        if incoming.next == total {
            let state = std::mem::take(&mut incoming.state);
            local.incoming = None;
            local.has_state = true;
            self.emit(Queued::StateLoaded {
                group,
                buf: state,
                fresh: false,
            });
            self.deliver_ready(group);
        }
        self.send_control(Dest::Member(donor), &ack);
    }

    pub(super) fn on_state_ack(
        &mut self,
        now: Instant,
        header: &Header,
        group: GroupId,
        transfer: u64,
        next: u32,
    ) {
        let Some(local) = self.groups.get_mut(&group) else {
            return;
        };
        let Some(donation) = &mut local.donation else {
            return;
        };
        if donation.epoch.0 != transfer {
            return;
        }
        let mut advanced = false;
        for (joiner, acked) in &mut donation.acked {
            if *joiner == header.sender && next > *acked {
                *acked = next.min(donation.total);
                advanced = true;
            }
        }
        let total = donation.total;
        donation.acked.retain(|(_, acked)| *acked < total);
        if donation.acked.is_empty() {
            local.donation = None;
        } else if advanced {
            donation.resend_at = now;
            self.transfer_tick(now);
        }
    }
}
