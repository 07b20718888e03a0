//! A session rebuilt from what a host stored, members' resume state included (the edge host
//! keeps sessions in Durable Object storage across hibernation and restarts), and what a host
//! reads to store it.

use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::{Away, Session};
use crate::data::{JsonObject, Spelling};
use crate::ids::{PlayerId, SessionId};
use crate::limits::Limits;

/// One member as a host stored it ([`Session::restore_members`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMember {
    /// Its player ID.
    pub id: PlayerId,
    /// Its own playerData; `None`: the session's default.
    pub data: Option<JsonObject>,
    /// The secret of its resume token ([`Session::secret_of`]); `None`: it did not ask for
    /// `resume`, and leaves when its connection does.
    pub secret: Option<u128>,
    /// While it is away, when its grace period ends ([`Session::away_until`]), in the
    /// milliseconds the host gives the session.
    pub away_until_ms: Option<u64>,
    /// The ID of the connection that is this member now, if not its own: a member that
    /// resumed is that connection, whose [`crate::ToSession::Disconnect`] concerns it.
    pub connection: Option<PlayerId>,
    /// Who its connection was found to be at connect time ([`Session::subject_of`]): only a
    /// connection of the same subject may resume its seat.
    pub subject: Option<Arc<String>>,
}

impl Away {
    /// An away member restored from storage: the events it missed were in memory only, so
    /// its resume gets the snapshot form.
    fn restored(deadline_ms: u64) -> Box<Away> {
        Box::new(Away {
            deadline_ms,
            sent_when_gone: 0,
        })
    }
}

impl Session {
    /// As [`Session::restore`], with each member's resume state as stored, and `seed` (32
    /// fresh bytes from the host's secure random source) for the secrets of the tokens it
    /// issues from now on: a restored session must not draw the secrets it drew before. An
    /// away member keeps its deadline (call [`Session::poll_timeout`]). What the members were
    /// sent before was not stored, so a resume of any of them gets the snapshot form, whatever
    /// it says it received. Nothing is sent.
    pub fn restore_members(
        id: SessionId,
        spelling: Spelling,
        session_data: JsonObject,
        player_default: JsonObject,
        mut members: Vec<StoredMember>,
        limits: Limits,
        seed: Option<[u8; 32]>,
    ) -> Self {
        let data = members.iter_mut().map(|m| (m.id, m.data.take()));
        let mut session = Session::restore(
            id,
            spelling,
            session_data,
            player_default,
            data.collect::<Vec<_>>(),
            limits,
        );
        session.secrets = seed.map(|seed| Box::new(ChaCha20Rng::from_seed(seed)));
        for stored in members {
            let Some(member) = session.members.iter_mut().find(|m| m.id == stored.id) else {
                continue;
            };
            member.secret = stored.secret;
            member.resumed_from = stored.connection.filter(|&c| c != stored.id);
            member.subject = stored.subject;
            // Without a secret no resume can come: such a member is not kept away.
            if member.secret.is_some() {
                member.away = stored.away_until_ms.map(Away::restored);
            }
        }
        session
    }

    /// The secret of member `player`'s resume token, if it has one: what a host stores to
    /// honour the token after a restart ([`StoredMember::secret`]). It changes at every resume
    /// ([`super::Change::MemberBack`]).
    pub fn secret_of(&self, player: PlayerId) -> Option<u128> {
        let member = self.members.iter().find(|m| m.id == player)?;
        member.secret
    }

    /// Who member `player`'s connection was found to be at connect time (a JWT's `sub`), if
    /// anyone: what a host stores with the seat ([`StoredMember::subject`]). It is set when
    /// the member joins and never changes (a resume must come from the same subject).
    pub fn subject_of(&self, player: PlayerId) -> Option<&Arc<String>> {
        let member = self.members.iter().find(|m| m.id == player)?;
        member.subject.as_ref()
    }

    /// The extensions member `player`'s connection asked for (`host`: it is told who the
    /// host is), as it joined or last resumed.
    pub fn features_of(&self, player: PlayerId) -> Option<crate::Features> {
        let member = self.members.iter().find(|m| m.id == player)?;
        Some(member.features)
    }

    /// Member `player`'s connection asked for `features`: what a host that restored the
    /// session (which stores no features) knows from elsewhere (the edge host: each socket's
    /// attachment). Nothing happens for a player that is no member.
    pub fn set_features(&mut self, player: PlayerId, features: crate::Features) {
        if let Some(member) = self.members.iter_mut().find(|m| m.id == player) {
            member.features = features;
        }
    }

    /// When member `player`'s grace period ends, while it is away ([`super::Change::MemberAway`]).
    pub fn away_until(&self, player: PlayerId) -> Option<u64> {
        let member = self.members.iter().find(|m| m.id == player)?;
        member.away.as_ref().map(|away| away.deadline_ms)
    }
}
