//! Which outbox lines are with the broker: the bookkeeping between handing
//! a message to the client and the PUBACK that lets the outbox forget it.
//! It knows offsets, not sockets, so it is tested without a broker.

use std::collections::{HashMap, VecDeque};

/// Detections handed over and not yet acknowledged, at most.
pub const MAX_IN_FLIGHT: usize = 64;

/// What a handed message was, to know what its PUBACK means.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Handed {
    /// Status, an instrument's state or a discovery config: nothing waits
    /// on its PUBACK.
    Control,
    /// The detection whose outbox line ends at `end`.
    Detection { end: u64 },
}

/// A detection line read from the outbox that the client did not take yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Where it starts in the outbox.
    pub offset: u64,
    pub text: String,
    /// Where the next line starts.
    pub next: u64,
}

/// The outbox cursor bookkeeping of one connection.
///
/// Messages are handed to the client in order; the client reports each
/// publish's packet id in the same order (`sent`), and the broker
/// acknowledges packet ids in any order (`acked`). The outbox may forget a
/// detection only when it and every detection before it are acknowledged.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Handed to the client, packet id not known yet, oldest first.
    handed: VecDeque<Handed>,
    /// Packet id → what it carries, until its PUBACK.
    in_flight: HashMap<u16, Handed>,
    /// Detections handed over, in outbox order: (end offset, acknowledged).
    detections: VecDeque<(u64, bool)>,
    /// A line the client refused: it goes first next time.
    refused: Option<Line>,
    /// Outbox offset up to which lines have been handed over.
    sent_upto: u64,
    /// Outbox offset from which lines were appended while connected: those
    /// before it waited in the outbox, and go out as `replayed`.
    live_from: u64,
}

impl Delivery {
    /// Starts where the outbox's saved cursor says.
    pub fn new(cursor: u64) -> Self {
        Delivery {
            sent_upto: cursor,
            ..Delivery::default()
        }
    }

    /// A (re)connection: whatever the outbox holds from `cursor` to `end`
    /// waited, and is sent again, marked as replayed.
    pub fn connected(&mut self, cursor: u64, end: u64) {
        self.live_from = end;
        self.sent_upto = cursor;
    }

    /// The connection is gone: what was handed over is forgotten, and the
    /// next connection starts again from the outbox's `cursor`.
    pub fn lost(&mut self, cursor: u64) {
        self.handed.clear();
        self.in_flight.clear();
        self.detections.clear();
        self.refused = None;
        self.sent_upto = cursor;
    }

    /// The outbox was rewritten (compacted or emptied): offsets restart at
    /// `cursor`.
    pub fn rebased(&mut self, cursor: u64) {
        self.sent_upto = cursor;
        if cursor == 0 {
            self.live_from = 0;
            self.refused = None;
        }
    }

    /// A control message went to the client.
    pub fn handed_control(&mut self) {
        self.handed.push_back(Handed::Control);
    }

    /// Whether another detection may be handed over now.
    pub fn has_room(&self) -> bool {
        self.detections.len() < MAX_IN_FLIGHT
    }

    /// The next line to hand over: the refused one, or the outbox's line at
    /// the offset this returns as `Err` (for the caller to read).
    pub fn next_line(&mut self) -> Result<Line, u64> {
        self.refused.take().ok_or(self.sent_upto)
    }

    /// The client would not take `line`: offer it again first.
    pub fn refused(&mut self, line: Line) {
        self.refused = Some(line);
    }

    /// Whether the line at `offset` waited in the outbox before this
    /// connection (its payload says `"replayed": true`).
    pub fn is_replay(&self, offset: u64) -> bool {
        offset < self.live_from
    }

    /// The client took the detection `line`.
    pub fn handed_detection(&mut self, line: &Line) {
        self.handed.push_back(Handed::Detection { end: line.next });
        self.detections.push_back((line.next, false));
        self.sent_upto = line.next;
    }

    /// The client sent the oldest handed message as packet `pkid`.
    pub fn sent(&mut self, pkid: u16) {
        if let Some(h) = self.handed.pop_front() {
            self.in_flight.insert(pkid, h);
        }
    }

    /// The broker acknowledged packet `pkid`. Says whether it was a
    /// detection, and, when a run of detections from the oldest on is now
    /// acknowledged, the outbox offset up to which it may forget them.
    pub fn acked(&mut self, pkid: u16) -> Acked {
        let Some(Handed::Detection { end }) = self.in_flight.remove(&pkid) else {
            return Acked::Other;
        };
        if let Some(d) = self.detections.iter_mut().find(|d| d.0 == end) {
            d.1 = true;
        }
        let mut upto = None;
        while let Some(&(end, true)) = self.detections.front() {
            upto = Some(end);
            self.detections.pop_front();
        }
        Acked::Detection { forget_upto: upto }
    }

    /// Whether the outbox holds lines past what was handed over.
    pub fn behind(&self, outbox_end: u64) -> bool {
        self.refused.is_some() || (self.has_room() && self.sent_upto < outbox_end)
    }

    /// Whether every handed message is acknowledged.
    pub fn settled(&self) -> bool {
        self.handed.is_empty() && self.in_flight.is_empty()
    }
}

/// What a PUBACK meant.
#[derive(Debug, PartialEq)]
pub enum Acked {
    /// A control message, or a packet this connection does not know.
    Other,
    /// A detection; `forget_upto` when the outbox may drop lines up to it.
    Detection { forget_upto: Option<u64> },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of 10 bytes each, from `from`.
    fn line(from: u64) -> Line {
        Line {
            offset: from,
            text: format!("{from:09}"),
            next: from + 10,
        }
    }

    /// Hands lines over as the sink does: from `next_line` until full.
    fn hand(d: &mut Delivery, outbox_end: u64, n: usize) -> Vec<u64> {
        let mut handed = vec![];
        while handed.len() < n && d.behind(outbox_end) {
            let l = d.next_line().unwrap_or_else(line);
            d.handed_detection(&l);
            handed.push(l.offset);
        }
        handed
    }

    #[test]
    fn the_outbox_forgets_only_an_acknowledged_prefix() {
        let mut d = Delivery::new(0);
        d.connected(0, 0);
        assert_eq!(hand(&mut d, 30, 10), [0, 10, 20]);
        for pkid in 1..=3 {
            d.sent(pkid);
        }
        // The second and third are acknowledged first: nothing to forget
        // while the first is out.
        let none = Acked::Detection { forget_upto: None };
        assert_eq!(d.acked(3), none);
        assert_eq!(d.acked(2), none);
        assert!(!d.settled());
        // The first completes the run: forget all three.
        assert_eq!(
            d.acked(1),
            Acked::Detection {
                forget_upto: Some(30)
            }
        );
        assert!(d.settled());
        // An unknown or repeated PUBACK changes nothing.
        assert_eq!(d.acked(1), Acked::Other);
    }

    #[test]
    fn control_messages_take_their_packet_ids_in_order() {
        let mut d = Delivery::new(0);
        d.handed_control();
        hand(&mut d, 10, 1);
        d.handed_control();
        d.sent(7);
        d.sent(8);
        d.sent(9);
        assert_eq!(d.acked(7), Acked::Other);
        assert_eq!(d.acked(9), Acked::Other);
        assert_eq!(
            d.acked(8),
            Acked::Detection {
                forget_upto: Some(10)
            }
        );
    }

    #[test]
    fn a_refused_line_goes_first_and_once() {
        let mut d = Delivery::new(0);
        let first = d.next_line().unwrap_or_else(line);
        d.refused(first.clone());
        assert!(d.behind(0), "a refused line is still to send");
        assert_eq!(d.next_line(), Ok(first.clone()));
        d.handed_detection(&first);
        assert_eq!(d.next_line(), Err(10));
    }

    #[test]
    fn at_most_max_in_flight_detections_are_out() {
        let mut d = Delivery::new(0);
        let end = 10 * (MAX_IN_FLIGHT as u64 + 5);
        assert_eq!(hand(&mut d, end, usize::MAX).len(), MAX_IN_FLIGHT);
        assert!(!d.behind(end));
        d.sent(1);
        d.acked(1);
        assert!(d.behind(end), "an acknowledged one makes room");
    }

    #[test]
    fn what_waited_before_a_connection_is_a_replay() {
        // 50 bytes wait from an earlier run, 20 of them acknowledged.
        let mut d = Delivery::new(20);
        d.connected(20, 50);
        assert_eq!(hand(&mut d, 60, 10), [20, 30, 40, 50]);
        assert!(d.is_replay(40));
        assert!(!d.is_replay(50), "appended while connected: live");
    }

    #[test]
    fn a_lost_connection_sends_again_from_the_cursor() {
        let mut d = Delivery::new(0);
        d.connected(0, 0);
        hand(&mut d, 30, 10);
        d.sent(1);
        d.acked(1);
        d.sent(2);
        // Lost before the rest were acknowledged: the outbox cursor is 10.
        d.lost(10);
        assert!(d.settled());
        d.connected(10, 30);
        assert_eq!(hand(&mut d, 40, 10), [10, 20, 30]);
        assert!(d.is_replay(20) && !d.is_replay(30));
        // PUBACKs of the old connection's packets mean nothing now.
        assert_eq!(d.acked(2), Acked::Other);
    }
}
