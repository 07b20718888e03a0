//! [`Session`]: the state machine of one session, the single owner of its state.
//!
//! A host feeds it what its players' machines send ([`ToSession`], through
//! [`Session::handle`]) and drains [`Output`]s: frames to send (a broadcast is one output,
//! encoded once), events for the players' machines ([`ToPlayer`]), what changed (for hosts
//! that store sessions), and the end. The native host runs one per tokio task, the edge host
//! one per Durable Object.

use std::collections::VecDeque;

use crate::command::{Command, Rejection, SessionFormat};
use crate::data::{JsonObject, PlayerFormat, Spelling};
use crate::error::ErrorCode;
use crate::ids::{PlayerId, SessionId};
use crate::join_burst::JoinBurst;
use crate::limits::Limits;
use crate::lobby;
use crate::messages::{CreateRequest, ToPlayer, ToSession};
use crate::reply::{self, ServerCommand, ServerFrame};

/// Something the host must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `frame` to player `to`.
    Send {
        /// The recipient.
        to: PlayerId,
        /// The frame.
        frame: ServerFrame,
    },
    /// Send player `to` the `playerJoin` of each member that was there when it joined, after
    /// every output to `to` before this one and before every later one. The host takes the
    /// frames from the burst as the joiner's socket takes them: a big session's burst is never
    /// built at once, and one that waits for a client that does not read holds its members'
    /// IDs, not their data ([`JoinBurst`]).
    SendJoinBurst {
        /// The joiner.
        to: PlayerId,
        /// Its `playerJoin`s, in the members' join order.
        burst: JoinBurst,
    },
    /// Send `frame` to every member the session has now (as listed by
    /// [`Session::member_ids`] when this output is drained), except `except`. Encoded once:
    /// build the transport's frame once and share it.
    Broadcast {
        /// The frame.
        frame: ServerFrame,
        /// The member that does not get it (a joiner, who gets its own welcome instead).
        except: Option<PlayerId>,
    },
    /// Deliver `event` to player `to`'s machine ([`crate::Player::handle_from_session`]),
    /// after every frame output before it.
    ToPlayer {
        /// The player.
        to: PlayerId,
        /// The event.
        event: ToPlayer,
    },
    /// What changed, for hosts that keep sessions in storage.
    Changed(Change),
    /// The last member is gone: the session is over. The host forgets it; inputs that still
    /// reach it are answered by the host as for a session that does not exist
    /// ([`crate::Player::handle_session_gone`]).
    Ended,
}

/// A change of a session's stored state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The session was created (everything is new).
    Created,
    /// A member joined (its data is the default).
    MemberAdded(PlayerId),
    /// A member left or was removed.
    MemberRemoved(PlayerId),
    /// sessionData and the default playerData changed, and every member's data was reset.
    Format,
    /// One member's playerData changed.
    PlayerData(PlayerId),
}

#[derive(Clone, Debug)]
struct Member {
    id: PlayerId,
    /// `None`: the session's default playerData (what every member has after a reset).
    data: Option<JsonObject>,
    /// What it may still have broadcast.
    egress: Egress,
}

impl Member {
    fn new(id: PlayerId, data: Option<JsonObject>) -> Self {
        Member {
            id,
            data,
            egress: Egress::FULL,
        }
    }
}

/// A member's egress budget ([`Limits::egress_bytes_per_second`]): a token bucket in
/// thousandths of a byte (so integer milliseconds refill it exactly) that may go below zero.
#[derive(Clone, Copy, Debug)]
struct Egress {
    /// `None`: full (as it starts, whatever the time).
    milli_bytes: Option<i128>,
    updated_ms: u64,
}

impl Egress {
    const FULL: Egress = Egress {
        milli_bytes: None,
        updated_ms: 0,
    };

    /// What the budget holds at `now_ms`.
    fn level(&self, now_ms: u64, limits: &Limits) -> i128 {
        let burst = i128::from(limits.egress_burst_bytes) * 1000;
        match self.milli_bytes {
            None => burst,
            Some(level) => {
                let elapsed = i128::from(now_ms.saturating_sub(self.updated_ms));
                (level + elapsed * i128::from(limits.egress_bytes_per_second)).min(burst)
            }
        }
    }

    fn is_full(&self, now_ms: u64, limits: &Limits) -> bool {
        self.level(now_ms, limits) >= i128::from(limits.egress_burst_bytes) * 1000
    }

    /// Takes `bytes` if the budget is not used up (above zero) at `now_ms`.
    fn take(&mut self, now_ms: u64, bytes: u64, limits: &Limits) -> bool {
        let level = self.level(now_ms, limits);
        if level <= 0 {
            return false;
        }
        self.milli_bytes = Some(level - i128::from(bytes) * 1000);
        self.updated_ms = self.updated_ms.max(now_ms);
        true
    }
}

/// One session: its data, format, spelling and members in the order they joined.
#[derive(Debug)]
pub struct Session {
    id: SessionId,
    spelling: Spelling,
    session_data: JsonObject,
    player_format: PlayerFormat,
    members: Vec<Member>,
    /// Bytes of JSON held: sessionData, default playerData, members' own playerData.
    data_bytes: usize,
    limits: Limits,
    outputs: VecDeque<Output>,
    /// [`Output::Ended`] was emitted: the session takes no more inputs.
    ended: bool,
    /// The latest time an input came with.
    now_ms: u64,
    /// Egress budgets of players who left before theirs had refilled, kept until it has: a
    /// player that comes back gets its own back, not a new one.
    departed: Vec<(PlayerId, Egress)>,
}

impl Session {
    /// Creates session `id` for a player's [`CreateRequest`]: its creator is the first member
    /// and is sent `sessionJoin` (and [`ToPlayer::Joined`]). The format's size was checked by
    /// the creator's machine.
    pub fn create(id: SessionId, request: CreateRequest, limits: Limits) -> Self {
        let CreateRequest { player, format } = request;
        let mut session = Session {
            id,
            spelling: format.spelling,
            data_bytes: format.data_bytes(),
            session_data: format.session_data,
            player_format: format.player_format,
            members: Vec::new(),
            limits,
            outputs: VecDeque::new(),
            ended: false,
            now_ms: 0,
            departed: Vec::new(),
        };
        session.outputs.push_back(Output::Changed(Change::Created));
        session.join(player);
        session
    }

    /// Rebuilds a session from stored state (the edge host keeps sessions in Durable Object
    /// storage across hibernation). `members` are in join order; `None` data means the
    /// default. Nothing is sent.
    pub fn restore(
        id: SessionId,
        spelling: Spelling,
        session_data: JsonObject,
        player_default: JsonObject,
        members: impl IntoIterator<Item = (PlayerId, Option<JsonObject>)>,
        limits: Limits,
    ) -> Self {
        let mut session = Session {
            id,
            spelling,
            data_bytes: session_data.as_str().len() + player_default.as_str().len(),
            session_data,
            player_format: PlayerFormat::new(player_default),
            members: Vec::new(),
            limits,
            outputs: VecDeque::new(),
            ended: false,
            now_ms: 0,
            departed: Vec::new(),
        };
        for (id, data) in members {
            if !session.contains(id) {
                session.data_bytes += data.as_ref().map_or(0, |d| d.as_str().len());
                session.members.push(Member::new(id, data));
            }
        }
        session
    }

    /// The session's ID.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The spelling of its data fields, fixed by its creator.
    pub fn spelling(&self) -> Spelling {
        self.spelling
    }

    /// The sessionData.
    pub fn session_data(&self) -> &JsonObject {
        &self.session_data
    }

    /// The default playerData.
    pub fn default_player_data(&self) -> &JsonObject {
        self.player_format.default_data()
    }

    /// The members in the order they joined, each with its playerData.
    pub fn members(&self) -> impl ExactSizeIterator<Item = (PlayerId, &JsonObject)> {
        let default = self.player_format.default_data();
        self.members
            .iter()
            .map(move |m| (m.id, m.data.as_ref().unwrap_or(default)))
    }

    /// The members' IDs in the order they joined: the recipients of an [`Output::Broadcast`].
    pub fn member_ids(&self) -> impl ExactSizeIterator<Item = PlayerId> + '_ {
        self.members.iter().map(|m| m.id)
    }

    /// How many members the session has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// `player`'s own playerData, or `None` if it has the default (or is no member); what a
    /// host stores per member.
    pub fn stored_player_data(&self, player: PlayerId) -> Option<&JsonObject> {
        self.members
            .iter()
            .find(|m| m.id == player)
            .and_then(|m| m.data.as_ref())
    }

    /// The session as one JSON object, for operators' monitoring:
    /// `{"sessionID":…,"spelling":"short"|"long","sessionData":…,"defaultPlayerData":…,
    /// "players":[{"playerID":…,"playerData":…},…]}` with the data as the clients sent it.
    pub fn describe(&self) -> String {
        let spelling = match self.spelling {
            Spelling::Short => "short",
            Spelling::Long => "long",
        };
        let mut out = format!(
            r#"{{"sessionID":{},"spelling":"{spelling}","sessionData":{},"defaultPlayerData":{},"players":["#,
            self.id,
            self.session_data.as_str(),
            self.player_format.default_data().as_str()
        );
        for (i, (player, data)) in self.members().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                r#"{{"playerID":{player},"playerData":{}}}"#,
                data.as_str()
            ));
        }
        out.push_str("]}");
        out
    }

    /// Whether `player` is a member.
    pub fn contains(&self, player: PlayerId) -> bool {
        self.position(player).is_some()
    }

    /// Whether the session has no members left; the host then destroys it.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The next thing to do, until `None`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// An input from a player's machine, at `now_ms` (milliseconds from any origin the host
    /// chooses; only differences count, for the members' egress budgets; an earlier time than
    /// an earlier input's is taken as that one). After [`Output::Ended`] inputs are ignored
    /// (the host no longer delivers them).
    pub fn handle(&mut self, now_ms: u64, input: ToSession) {
        if self.ended {
            return;
        }
        self.now_ms = self.now_ms.max(now_ms);
        match input {
            ToSession::Join { player } => self.join(player),
            ToSession::Command { player, command } => self.handle_command(player, command),
            ToSession::Disconnect { player } => self.remove(player),
        }
        if self.members.is_empty() {
            self.ended = true;
            self.outputs.push_back(Output::Ended);
        }
    }

    /// Adds `player`: it gets `sessionJoin` and a `playerJoin` for each member in join order
    /// (one [`Output::SendJoinBurst`]); every member gets a `playerJoin` of it. A full session
    /// sends it error 16 instead. A player already in the session is only told it is a member.
    fn join(&mut self, player: PlayerId) {
        if self.contains(player) {
            self.tell(player, ToPlayer::Joined { session: self.id });
            return;
        }
        if self.members.len() >= self.limits.max_players_per_session {
            let message = format!(
                "the session has its maximum of {} players",
                self.limits.max_players_per_session
            );
            let frame = reply::error(
                ServerCommand::SessionJoin,
                ErrorCode::SessionFull,
                Some(&message),
            );
            self.send(player, frame);
            self.tell(player, ToPlayer::JoinRefused);
            return;
        }
        let default = self.player_format.default_data().clone();
        let welcome =
            reply::session_join(self.spelling, self.id, player, &self.session_data, &default);
        self.send(player, welcome);
        if !self.members.is_empty() {
            let members = self.members.iter().map(|m| (m.id, m.data.clone()));
            let burst = JoinBurst::new(self.spelling, default.clone(), members.collect());
            self.outputs
                .push_back(Output::SendJoinBurst { to: player, burst });
        }
        let announcement =
            reply::player_data(ServerCommand::PlayerJoin, self.spelling, player, &default);
        let egress = match self.departed.iter().position(|(p, _)| *p == player) {
            Some(i) => self.departed.swap_remove(i).1,
            None => Egress::FULL,
        };
        self.members.push(Member {
            id: player,
            data: None,
            egress,
        });
        self.outputs.push_back(Output::Broadcast {
            frame: announcement,
            except: Some(player),
        });
        self.outputs
            .push_back(Output::Changed(Change::MemberAdded(player)));
        self.tell(player, ToPlayer::Joined { session: self.id });
    }

    /// A command from member `player` (or the reason its frame was rejected). From a player
    /// that is no member nothing happens (a host delivered it to the wrong session).
    fn handle_command(&mut self, player: PlayerId, command: Result<Command, Rejection>) {
        let Some(index) = self.position(player) else {
            return;
        };
        match command {
            Err(rejection) => self.send(player, rejection.frame()),
            Ok(Command::CreateSession(_)) => self.send(
                player,
                reply::error(
                    ServerCommand::SessionJoin,
                    ErrorCode::CreateWhileInSession,
                    None,
                ),
            ),
            Ok(Command::JoinSession(_)) => self.send(
                player,
                reply::error(
                    ServerCommand::SessionJoin,
                    ErrorCode::JoinWhileInSession,
                    None,
                ),
            ),
            Ok(Command::UpdateSession(format)) => self.update_session(index, *format),
            Ok(Command::UpdatePlayer(data)) => self.update_player(index, data),
            Ok(Command::LeaveSession) => {
                self.remove_member(index);
                self.send(player, reply::session_leave());
                self.broadcast(reply::player_leave(player));
                self.tell(player, ToPlayer::Left);
            }
        }
    }

    /// `player`'s connection is gone: the others get `playerLeave`.
    fn remove(&mut self, player: PlayerId) {
        let Some(index) = self.position(player) else {
            return;
        };
        self.remove_member(index);
        self.broadcast(reply::player_leave(player));
    }

    fn remove_member(&mut self, index: usize) {
        let member = self.members.remove(index);
        let (now, limits) = (self.now_ms, &self.limits);
        self.departed.retain(|(_, e)| !e.is_full(now, limits));
        if !member.egress.is_full(now, limits) {
            self.departed.push((member.id, member.egress));
        }
        self.data_bytes -= member.data.map_or(0, |d| d.as_str().len());
        self.outputs
            .push_back(Output::Changed(Change::MemberRemoved(member.id)));
    }

    fn update_session(&mut self, index: usize, format: SessionFormat) {
        let player = self.members[index].id;
        if format.data_bytes() > self.limits.max_session_data_bytes {
            let frame = lobby::data_too_large(ServerCommand::SessionUpdate, &self.limits);
            self.send(player, frame);
            return;
        }
        // The spelling stays the creator's, whatever this member wrote.
        let frame = reply::session_update(
            self.spelling,
            &format.session_data,
            format.player_format.default_data(),
        );
        if !self.take_egress(index, &frame) {
            return;
        }
        self.data_bytes = format.data_bytes();
        self.session_data = format.session_data;
        self.player_format = format.player_format;
        for member in &mut self.members {
            member.data = None;
        }
        self.outputs.push_back(Output::Changed(Change::Format));
        self.broadcast(frame);
    }

    /// Whether member `index`'s egress budget takes a broadcast of `frame` to every member;
    /// if not, it is sent error 20 (in the frame's reply command).
    fn take_egress(&mut self, index: usize, frame: &ServerFrame) -> bool {
        let recipients = self.members.len() as u64;
        let bytes = (frame.bytes().len() as u64).saturating_mul(recipients);
        let member = &mut self.members[index];
        if member.egress.take(self.now_ms, bytes, &self.limits) {
            return true;
        }
        let message = format!(
            "your broadcasts would pass {} bytes per second (bursts up to {}), counting each \
             frame's bytes times its {recipients} recipients: nothing was broadcast",
            self.limits.egress_bytes_per_second, self.limits.egress_burst_bytes
        );
        let refusal = reply::error(frame.command(), ErrorCode::EgressBudget, Some(&message));
        let to = member.id;
        self.send(to, refusal);
        false
    }

    fn update_player(&mut self, index: usize, data: JsonObject) {
        let player = self.members[index].id;
        if !self.player_format.accepts(&data) {
            let frame = reply::error(
                ServerCommand::PlayerUpdate,
                ErrorCode::PlayerDataMismatch,
                None,
            );
            self.send(player, frame);
            return;
        }
        let old = self.members[index]
            .data
            .as_ref()
            .map_or(0, |d| d.as_str().len());
        let bytes = self.data_bytes - old + data.as_str().len();
        if bytes > self.limits.max_session_data_bytes {
            let frame = lobby::data_too_large(ServerCommand::PlayerUpdate, &self.limits);
            self.send(player, frame);
            return;
        }
        let frame = reply::player_data(ServerCommand::PlayerUpdate, self.spelling, player, &data);
        if !self.take_egress(index, &frame) {
            return;
        }
        self.data_bytes = bytes;
        self.members[index].data = Some(data);
        self.outputs
            .push_back(Output::Changed(Change::PlayerData(player)));
        self.broadcast(frame);
    }

    fn position(&self, player: PlayerId) -> Option<usize> {
        self.members.iter().position(|m| m.id == player)
    }

    fn send(&mut self, to: PlayerId, frame: ServerFrame) {
        self.outputs.push_back(Output::Send { to, frame });
    }

    fn tell(&mut self, to: PlayerId, event: ToPlayer) {
        self.outputs.push_back(Output::ToPlayer { to, event });
    }

    /// Queues `frame` for every member; its bytes are shared, not copied.
    fn broadcast(&mut self, frame: ServerFrame) {
        self.outputs.push_back(Output::Broadcast {
            frame,
            except: None,
        });
    }
}
