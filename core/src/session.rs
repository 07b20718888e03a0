//! [`Session`]: the state machine of one session, the single owner of its state.
//!
//! A host feeds it what its players' machines send ([`ToSession`], through
//! [`Session::handle`]) and drains [`Output`]s: frames to send (a broadcast is one output,
//! encoded once), events for the players' machines ([`ToPlayer`]), what changed (for hosts
//! that store sessions), and the end. The native host runs one per tokio task, the edge host
//! one per Durable Object.

use std::collections::VecDeque;
use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::access::{Access, Password, PasswordRefusal};
use crate::command::{Command, Rejection, SessionFormat};
use crate::data::{JsonObject, PlayerFormat, Spelling};
use crate::error::ErrorCode;
use crate::features::{Features, ResumeRequest, ResumeToken};
use crate::ids::{PlayerId, SessionId};
use crate::join_burst::JoinBurst;
use crate::limits::Limits;
use crate::lobby;
use crate::messages::{CreateRequest, ToPlayer, ToSession};
use crate::reply::{self, Replay, ServerCommand, ServerFrame};

mod restore;
pub use restore::StoredMember;

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
    /// The connection known as player `from` (a resume's new connection) is member `to`
    /// from now on: what is sent to `to` goes to it. Comes before every output to `to` that
    /// the resume causes.
    Rebind {
        /// The connection's player ID when it asked.
        from: PlayerId,
        /// The member it is now.
        to: PlayerId,
    },
    /// Member `player`'s connection is gone but it keeps its seat for the grace period: the
    /// host lets go of that connection (the session keeps its recent events, to be
    /// replayed). Call [`Session::poll_timeout`] again.
    Away {
        /// The member.
        player: PlayerId,
    },
    /// Player `player` is no member (its host kicked it) and its machine is done with the
    /// session: the host lets go of the way to its connection, which it kept until now so
    /// that what the player sent meanwhile could be answered.
    Release {
        /// The player, by the ID the session's outputs named it with.
        player: PlayerId,
    },
    /// Member `player` is being resumed on a new connection while its old one still seemed
    /// open (a network switch the heartbeat has not noticed yet): the host closes that old
    /// connection with [`crate::CloseReason::Replaced`] and lets go of it. Comes before the
    /// [`Output::Rebind`] of the new one.
    Replaced {
        /// The member.
        player: PlayerId,
    },
    /// Answer player `to`'s `ping`: send it [`crate::reply::pong`] with this `t` and the
    /// host's clock (milliseconds since the Unix epoch), after every output to `to` before this
    /// one.
    Pong {
        /// The player.
        to: PlayerId,
        /// The `t` it sent, as JSON text, if any.
        t: Option<Box<str>>,
    },
    /// What `listSessions` shows of this public session changed (members, lock, metadata):
    /// the host keeps it in its directory ([`crate::Directory::set_listing`]). Never for a
    /// private session.
    Listing(Box<crate::directory::Listing>),
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
    /// A member's connection is gone and it keeps its seat until its deadline
    /// ([`Session::away_until`]).
    MemberAway(PlayerId),
    /// A member resumed its seat: it is no longer away and has a new resume secret
    /// ([`Session::secret_of`]).
    MemberBack(PlayerId),
    /// The host locked or unlocked the session, or changed its metadata
    /// ([`Session::access`]).
    Access,
}

#[derive(Clone, Debug)]
struct Member {
    id: PlayerId,
    /// `None`: the session's default playerData (what every member has after a reset).
    data: Option<JsonObject>,
    /// What it may still have broadcast.
    egress: Egress,
    /// The secret of its resume token, if it asked for `resume`.
    secret: Option<u128>,
    /// While its connection is gone: what it is missing. Boxed: rare, and most members never
    /// need it.
    away: Option<Box<Away>>,
    /// The connection ID it last resumed from: that connection is its connection now.
    resumed_from: Option<PlayerId>,
    /// Events it was sent with its welcome (`sessionJoin`'s join burst, a resume's replay or
    /// snapshot): the first ones its client counts in `received`.
    welcome_events: u64,
    /// [`Session::events`] after its welcome: every event from there on was sent to it.
    events_from: u64,
    /// Restored from storage: what it was sent before is not known, so its resume gets a
    /// snapshot.
    uncounted: bool,
    /// Who its connection was found to be at connect time (a JWT's `sub`): only a connection
    /// of the same subject may resume its seat.
    subject: Option<Arc<String>>,
    /// The extensions its connection asked for (`host`: it is told who the host is).
    features: Features,
}

/// The connection of a member its host removed, until that player's machine is done with the
/// session ([`ToPlayer::Kicked`]): what it sent meanwhile is answered as from the lobby.
#[derive(Clone, Copy, Debug)]
struct KickedConnection {
    /// The ID it was a member by (what its commands name).
    member: PlayerId,
    /// Its connection's own ID (what its disconnect names).
    connection: PlayerId,
}

/// What an away member keeps.
#[derive(Clone, Debug)]
struct Away {
    /// When it leaves if it has not resumed.
    deadline_ms: u64,
    /// The events it had been sent when its connection was found gone: where a resume
    /// without `received` replays from.
    sent_when_gone: u64,
}

/// The session's latest events (broadcasts), kept while a member could resume, up to
/// [`Limits::resume_replay_bytes`]: one log for every member, whose frames share their
/// bytes with what was sent.
#[derive(Debug, Default)]
struct EventLog {
    /// The number of the first event in `frames` (events are numbered from 0 in the order
    /// they were broadcast).
    start: u64,
    frames: VecDeque<ServerFrame>,
    bytes: usize,
}

impl EventLog {
    /// Event `number` was just broadcast: kept if `keep`, while the log fits in `limit`.
    fn record(&mut self, number: u64, frame: &ServerFrame, keep: bool, limit: usize) {
        if !keep {
            *self = EventLog {
                start: number + 1,
                ..EventLog::default()
            };
            return;
        }
        self.frames.push_back(frame.clone());
        self.bytes += frame.bytes().len();
        while self.bytes > limit {
            let Some(old) = self.frames.pop_front() else {
                break;
            };
            self.bytes -= old.bytes().len();
            self.start += 1;
        }
    }

    /// The events from number `from` on, if the log still has them all.
    fn since(&self, from: u64) -> Option<impl ExactSizeIterator<Item = &ServerFrame>> {
        let skip = usize::try_from(from.checked_sub(self.start)?).ok()?;
        Some(self.frames.iter().skip(skip))
    }
}

impl Member {
    fn new(id: PlayerId, data: Option<JsonObject>) -> Self {
        Member {
            id,
            data,
            egress: Egress::FULL,
            secret: None,
            away: None,
            resumed_from: None,
            welcome_events: 0,
            events_from: 0,
            uncounted: false,
            subject: None,
            features: Features::NONE,
        }
    }

    /// The connection that is this member now: the one it last resumed from, else its own.
    fn connection(&self) -> PlayerId {
        self.resumed_from.unwrap_or(self.id)
    }

    /// How many events the session has sent it since its welcome, counting its welcome's.
    fn events_sent(&self, events: u64) -> u64 {
        self.welcome_events + (events - self.events_from)
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
    /// Where resume tokens' secrets come from; `None`: the host gave no seed, and no member
    /// is offered resume.
    secrets: Option<Box<ChaCha20Rng>>,
    /// How many events (broadcasts) the session has sent.
    events: u64,
    /// The latest of them, for resumes.
    log: EventLog,
    /// Its options and lock. (Boxed: most sessions have none, and it is rarely read.)
    access: Box<Access>,
    /// Kicked players whose machines have not yet let go of the session.
    kicked: Vec<KickedConnection>,
    /// What it last reported for `listSessions` (public sessions only).
    listed: Option<Box<crate::directory::Listing>>,
}

impl Session {
    /// Creates session `id` for a player's [`CreateRequest`]: its creator is the first member
    /// and is sent `sessionJoin` (and [`ToPlayer::Joined`]). The format's size was checked by
    /// the creator's machine.
    pub fn create(id: SessionId, request: CreateRequest, limits: Limits) -> Self {
        Self::create_seeded(id, request, limits, None)
    }

    /// As [`Session::create`], with `seed` (32 bytes from the host's secure random source)
    /// for the secrets of resume tokens: without one, members that ask for `resume` are not
    /// given a token, so they leave when their connection does.
    pub fn create_seeded(
        id: SessionId,
        request: CreateRequest,
        limits: Limits,
        seed: Option<[u8; 32]>,
    ) -> Self {
        let CreateRequest {
            player,
            format,
            features,
            subject,
            options,
        } = request;
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
            secrets: seed.map(|seed| Box::new(ChaCha20Rng::from_seed(seed))),
            events: 0,
            log: EventLog::default(),
            access: Box::new(Access::new(&options)),
            kicked: Vec::new(),
            listed: None,
        };
        session.outputs.push_back(Output::Changed(Change::Created));
        // The creator knows the password: it set it.
        session.join(player, features, subject, options.password, false);
        session.report_listing();
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
            secrets: None,
            events: 0,
            log: EventLog::default(),
            access: Box::default(),
            kicked: Vec::new(),
            listed: None,
        };
        for (id, data) in members {
            if !session.contains(id) {
                session.data_bytes += data.as_ref().map_or(0, |d| d.as_str().len());
                session.members.push(Member {
                    uncounted: true,
                    ..Member::new(id, data)
                });
            }
        }
        session
    }

    /// The session's ID.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Its options and lock, as created (or restored) and changed since.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The session with `access` as its options and lock (a host that restores a session
    /// from storage).
    pub fn with_access(mut self, access: Access) -> Self {
        *self.access = access;
        self
    }

    /// Whether it is private: not found by `joinSession -1` (nor listed).
    pub fn is_private(&self) -> bool {
        self.access.private
    }

    /// Its host: the earliest member.
    pub fn host(&self) -> Option<PlayerId> {
        self.members.first().map(|m| m.id)
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
    /// "players":[{"playerID":…,"playerData":…},…]}` with the data as the clients sent it; a
    /// member that is away (its connection gone, its seat kept for `resume`) has
    /// `"away":true`, and one whose connection a connect-time auth check named has
    /// `"subject":"…"`.
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
            let away = if self.is_away(player) {
                r#","away":true"#
            } else {
                ""
            };
            let subject = match self.members[i].subject.as_deref() {
                // Serializing a str cannot fail.
                Some(subject) => format!(
                    r#","subject":{}"#,
                    serde_json::to_string(subject).unwrap_or_default()
                ),
                None => String::new(),
            };
            out.push_str(&format!(
                r#"{{"playerID":{player},"playerData":{}{away}{subject}}}"#,
                data.as_str()
            ));
        }
        out.push(']');
        let access = &self.access;
        let mut options = Vec::new();
        if let Some(max) = access.max_players {
            options.push(format!(r#""maxPlayers":{max}"#));
        }
        for (set, name) in [
            (access.private, "private"),
            (access.password.is_some(), "password"),
            (access.host_only_session_updates, "hostOnlySessionUpdates"),
            (access.locked, "locked"),
        ] {
            if set {
                options.push(format!(r#""{name}":true"#));
            }
        }
        if let Some(metadata) = &access.metadata {
            options.push(format!(r#""metadata":{}"#, metadata.as_str()));
        }
        if !options.is_empty() {
            out.push_str(&format!(r#","options":{{{}}}"#, options.join(",")));
        }
        out.push('}');
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
            ToSession::Join {
                player,
                features,
                subject,
                password,
                quiet,
            } => self.join(player, features, subject, password, quiet),
            ToSession::Resume {
                player,
                request,
                subject,
                features,
            } => self.resume(player, *request, subject, features),
            ToSession::Command { player, command } => self.handle_command(player, command),
            ToSession::Disconnect { player } => self.disconnect(player),
        }
        self.end_if_empty();
        self.report_listing();
    }

    /// What `listSessions` shows of it now.
    pub fn listing(&self) -> crate::directory::Listing {
        crate::directory::Listing {
            players: u32::try_from(self.members.len()).unwrap_or(u32::MAX),
            max_players: self.access.max_players,
            locked: self.access.locked,
            password: self.access.password.is_some(),
            metadata: self.access.metadata.clone(),
        }
    }

    /// Reports the listing if it changed (a public session that has not ended).
    fn report_listing(&mut self) {
        if self.access.private || self.ended {
            return;
        }
        let listing = self.listing();
        if self.listed.as_deref() != Some(&listing) {
            self.listed = Some(Box::new(listing.clone()));
            self.outputs.push_back(Output::Listing(Box::new(listing)));
        }
    }

    /// When [`Session::handle_timeout`] must next be called: the first away member's
    /// deadline. `None`: no timer is needed.
    pub fn poll_timeout(&self) -> Option<u64> {
        let deadlines = self.members.iter().filter_map(|m| m.away.as_ref());
        deadlines.map(|away| away.deadline_ms).min()
    }

    /// Time has come to `now_ms`: away members whose grace period is over leave (the others
    /// get `playerLeave`).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.ended {
            return;
        }
        self.now_ms = self.now_ms.max(now_ms);
        let now = self.now_ms;
        while let Some(index) = self
            .members
            .iter()
            .position(|m| m.away.as_ref().is_some_and(|a| a.deadline_ms <= now))
        {
            self.remove_and_announce(index);
        }
        self.end_if_empty();
        self.report_listing();
    }

    /// Whether member `player` is away (its connection gone, its seat kept).
    pub fn is_away(&self, player: PlayerId) -> bool {
        let member = self.members.iter().find(|m| m.id == player);
        member.is_some_and(|m| m.away.is_some())
    }

    /// The member a [`ToSession::Disconnect`] of `connection` would concern: the one whose
    /// connection it is now (its own first connection, or the one it last resumed from) and
    /// that is not away. The disconnect of a connection a resume replaced concerns nobody.
    pub fn member_of_connection(&self, connection: PlayerId) -> Option<PlayerId> {
        let current = |m: &&Member| m.connection() == connection && m.away.is_none();
        self.members.iter().find(current).map(|m| m.id)
    }

    /// Bytes of the events the session keeps for resumes (one log for all its members, up to
    /// [`Limits::resume_replay_bytes`]; nothing in a session where no member asked for
    /// `resume`): what a host counts in its memory. The frames share their bytes with those
    /// sent, so this is at most what they cost.
    pub fn replay_bytes(&self) -> usize {
        self.log.bytes
    }

    /// How many members are away (their connection gone, their seat kept).
    pub fn away_count(&self) -> usize {
        self.members.iter().filter(|m| m.away.is_some()).count()
    }

    fn end_if_empty(&mut self) {
        if self.members.is_empty() && !self.ended {
            self.ended = true;
            self.outputs.push_back(Output::Ended);
        }
    }

    /// Adds `player`: it gets `sessionJoin` and a `playerJoin` for each member in join order
    /// (one [`Output::SendJoinBurst`]); every member gets a `playerJoin` of it. A full session
    /// sends it error 16 instead. A player already in the session is only told it is a member.
    fn join(
        &mut self,
        player: PlayerId,
        features: Features,
        subject: Option<Arc<String>>,
        password: Option<Password>,
        quiet: bool,
    ) {
        if self.contains(player) {
            self.tell(player, ToPlayer::Joined { session: self.id });
            return;
        }
        // The password first: without it, nothing else about the session is told.
        let refusal = match self.access.check_password(self.now_ms, password.as_ref()) {
            Ok(()) => None,
            Err(PasswordRefusal::Wrong) => Some((
                ErrorCode::WrongPassword,
                "the session has a password: joinSession needs the right `password`".to_owned(),
            )),
            Err(PasswordRefusal::TooManyGuesses) => Some((
                ErrorCode::TooManyGuesses,
                "the session had too many wrong passwords lately: try again in a few seconds"
                    .to_owned(),
            )),
        };
        let cap = match self.access.max_players {
            Some(max) => usize::try_from(max)
                .unwrap_or(usize::MAX)
                .min(self.limits.max_players_per_session),
            None => self.limits.max_players_per_session,
        };
        let refusal = refusal.or_else(|| {
            if self.access.locked {
                Some((
                    ErrorCode::SessionLocked,
                    "the session's host locked it: it takes no new players".to_owned(),
                ))
            } else if self.members.len() >= cap {
                Some((
                    ErrorCode::SessionFull,
                    format!("the session has its maximum of {cap} players"),
                ))
            } else {
                None
            }
        });
        if let Some((code, message)) = refusal {
            if !quiet {
                let frame = reply::error(ServerCommand::SessionJoin, code, Some(&message));
                self.send(player, frame);
            }
            self.tell(player, ToPlayer::JoinRefused);
            return;
        }
        let default = self.player_format.default_data().clone();
        let secret = features
            .contains(Features::RESUME)
            .then(|| self.new_secret())
            .flatten();
        let token = secret.map(|secret| self.token(player, secret));
        // A creator is its session's host.
        let host = features
            .contains(Features::HOST)
            .then(|| self.host().unwrap_or(player));
        let welcome = reply::session_join(
            self.spelling,
            self.id,
            player,
            &self.session_data,
            &default,
            token.as_ref(),
            host,
        );
        self.send(player, welcome);
        let welcome_events = self.members.len() as u64;
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
        // Grown by a quarter at a time, not doubled: a member is ~160 bytes, and most sessions
        // are small (a session of 10 keeps room for 12, not 16).
        if self.members.len() == self.members.capacity() {
            self.members.reserve_exact((self.members.len() / 4).max(4));
        }
        self.members.push(Member {
            egress,
            secret,
            welcome_events,
            subject,
            features,
            ..Member::new(player, None)
        });
        self.broadcast_except(announcement, Some(player));
        // Its own announcement is not sent to it: its count starts after it.
        let events = self.events;
        if let Some(member) = self.members.last_mut() {
            member.events_from = events;
        }
        self.outputs
            .push_back(Output::Changed(Change::MemberAdded(player)));
        self.tell(player, ToPlayer::Joined { session: self.id });
    }

    /// A command from member `player` (or the reason its frame was rejected). From a player
    /// that is no member nothing happens (a host delivered it to the wrong session).
    fn handle_command(&mut self, player: PlayerId, command: Result<Command, Rejection>) {
        let Some(index) = self.position(player) else {
            return self.answer_kicked(player, command);
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
            Ok(Command::JoinSession(..) | Command::JoinOrCreate(_)) => self.send(
                player,
                reply::error(
                    ServerCommand::SessionJoin,
                    ErrorCode::JoinWhileInSession,
                    None,
                ),
            ),
            Ok(Command::Hello(_)) => self.send(
                player,
                reply::error(
                    ServerCommand::Hello,
                    ErrorCode::HelloNotInLobby,
                    Some("hello is answered in the lobby only: send it before creating or joining"),
                ),
            ),
            Ok(Command::ResumeSession(_)) => self.send(
                player,
                reply::error(
                    ServerCommand::SessionResume,
                    ErrorCode::ResumeWhileInSession,
                    Some("you are in a session: resumeSession is for a new connection"),
                ),
            ),
            Ok(Command::UpdateSession(_))
                if index != 0 && self.access.host_only_session_updates =>
            {
                self.refuse_not_host(player, ServerCommand::SessionUpdate, "updateSession")
            }
            Ok(Command::UpdateSession(format)) => self.update_session(index, *format),
            Ok(Command::UpdatePlayer(data)) => self.update_player(index, data),
            Ok(Command::LeaveSession) => {
                self.remove_member(index);
                self.send(player, reply::session_leave());
                self.announce_leave(player, index == 0);
                self.tell(player, ToPlayer::Left);
            }
            Ok(Command::KickPlayer(_)) if index != 0 => {
                self.refuse_not_host(player, ServerCommand::PlayerLeave, "kickPlayer")
            }
            Ok(Command::KickPlayer(target)) => self.kick(player, target),
            Ok(Command::LockSession(_)) if index != 0 => {
                self.refuse_not_host(player, ServerCommand::SessionLock, "lockSession")
            }
            Ok(Command::Ping(t)) => self.outputs.push_back(Output::Pong { to: player, t }),
            Ok(Command::ListSessions(_)) => self.send(
                player,
                reply::error(
                    ServerCommand::SessionList,
                    ErrorCode::ListWhileInSession,
                    Some("sessions are listed from the lobby: leave this one first"),
                ),
            ),
            Ok(Command::SetMetadata(_)) if index != 0 => {
                self.refuse_not_host(player, ServerCommand::SessionMetadata, "setMetadata")
            }
            Ok(Command::SetMetadata(metadata)) => {
                let frame = reply::session_metadata(&metadata);
                self.access.metadata = Some(metadata);
                self.outputs.push_back(Output::Changed(Change::Access));
                self.send(player, frame);
            }
            Ok(Command::SendMessage(message)) => self.send_message(index, *message),
            Ok(Command::LockSession(locked)) => {
                if self.access.locked != locked {
                    self.access.locked = locked;
                    self.outputs.push_back(Output::Changed(Change::Access));
                }
                let frame = reply::session_lock(locked);
                self.send(player, frame.clone());
                self.send_to_host_feature(&frame, Some(player));
            }
        }
    }

    /// A command from a player that is no member: from one its host kicked, whose machine
    /// had not heard of it yet, it is answered as the lobby would (error 2: not in a
    /// session) or, for the commands the lobby takes, as when it was sent (in a session);
    /// its `leaveSession` also ends its kick. From anyone else nothing happens (a host
    /// delivered it to the wrong session).
    fn answer_kicked(&mut self, player: PlayerId, command: Result<Command, Rejection>) {
        let Some(at) = self.kicked.iter().position(|k| k.member == player) else {
            return;
        };
        let frame = match command {
            Err(rejection) => rejection.frame(),
            Ok(Command::CreateSession(_)) => reply::error(
                ServerCommand::SessionJoin,
                ErrorCode::CreateWhileInSession,
                None,
            ),
            Ok(Command::JoinSession(..) | Command::JoinOrCreate(_)) => reply::error(
                ServerCommand::SessionJoin,
                ErrorCode::JoinWhileInSession,
                None,
            ),
            Ok(Command::Hello(_)) => reply::error(
                ServerCommand::Hello,
                ErrorCode::HelloNotInLobby,
                Some("hello is answered in the lobby only: send it before creating or joining"),
            ),
            Ok(Command::ResumeSession(_)) => reply::error(
                ServerCommand::SessionResume,
                ErrorCode::ResumeWhileInSession,
                Some("you are in a session: resumeSession is for a new connection"),
            ),
            Ok(Command::Ping(t)) => {
                self.outputs.push_back(Output::Pong { to: player, t });
                return;
            }
            Ok(Command::ListSessions(_)) => reply::error(
                ServerCommand::SessionList,
                ErrorCode::ListWhileInSession,
                Some("sessions are listed from the lobby: leave this one first"),
            ),
            Ok(Command::LeaveSession) => {
                self.kicked.swap_remove(at);
                self.send(player, lobby::not_in_session(ServerCommand::SessionLeave));
                self.tell(player, ToPlayer::Left);
                self.outputs.push_back(Output::Release { player });
                return;
            }
            Ok(command) => lobby::not_in_session(command.reply()),
        };
        self.send(player, frame);
    }

    /// Member `index`'s `sendMessage`: a `message` to each recipient that asked for
    /// `messages` (every other member, or those in `to`; not those away), one frame shared,
    /// paid from the sender's egress budget; then `messageSent` to the sender.
    fn send_message(&mut self, index: usize, message: crate::command::Message) {
        let sender = self.members[index].id;
        if let Some(to) = &message.to {
            if let Some(stranger) = to.iter().find(|p| !self.contains(**p)) {
                let text =
                    format!("player {stranger} is no member of this session: nothing was sent");
                let frame = reply::error(
                    ServerCommand::MessageSent,
                    ErrorCode::NoSuchRecipient,
                    Some(&text),
                );
                return self.send(sender, frame);
            }
        }
        let listening = |m: &&Member| m.features.contains(Features::MESSAGES) && m.away.is_none();
        let recipients: Vec<PlayerId> = match &message.to {
            Some(to) => self
                .members
                .iter()
                .filter(|m| to.contains(&m.id))
                .filter(listening)
                .map(|m| m.id)
                .collect(),
            None => self
                .members
                .iter()
                .filter(|m| m.id != sender)
                .filter(listening)
                .map(|m| m.id)
                .collect(),
        };
        let frame = reply::message(sender, &message.data);
        let count = recipients.len() as u64;
        if !self.take_egress_for(index, &frame, count, ServerCommand::MessageSent) {
            return;
        }
        for to in &recipients {
            self.send(*to, frame.clone());
        }
        self.send(sender, reply::message_sent(recipients.len()));
    }

    /// Error 29 to `player`, in `reply`.
    fn refuse_not_host(&mut self, player: PlayerId, reply: ServerCommand, command: &str) {
        let host = self.host().map_or(0, |h| h.0);
        let message = format!("only the session's host (player {host}) may send {command}");
        self.send(
            player,
            reply::error(reply, ErrorCode::NotHost, Some(&message)),
        );
    }

    /// The host removes `target`: it gets `sessionLeave` (with `"kicked":true` if it asked
    /// for `host`) and is back in the lobby; every other member gets `playerLeave`.
    fn kick(&mut self, host: PlayerId, target: PlayerId) {
        let Some(index) = self.position(target).filter(|_| target != host) else {
            let message = format!("player {target} is no other member of this session");
            let frame = reply::error(
                ServerCommand::PlayerLeave,
                ErrorCode::NoSuchMember,
                Some(&message),
            );
            return self.send(host, frame);
        };
        let member = &self.members[index];
        let connected = member.away.is_none();
        let host_feature = member.features.contains(Features::HOST);
        let connection = member.connection();
        self.remove_member(index);
        if connected {
            self.send(target, reply::kicked(host_feature));
            self.kicked.push(KickedConnection {
                member: target,
                connection,
            });
            self.tell(target, ToPlayer::Kicked { session: self.id });
        }
        // The host is the earliest member and stays: no host change.
        self.broadcast(reply::player_leave(target));
    }

    /// `player` was removed (it was the host if `was_host`): the others get `playerLeave`,
    /// and, if the host changed, members that asked for `host` get a `hostChange`.
    fn announce_leave(&mut self, player: PlayerId, was_host: bool) {
        self.broadcast(reply::player_leave(player));
        if let (true, Some(host)) = (was_host, self.host()) {
            self.send_to_host_feature(&reply::host_change(host), None);
        }
    }

    /// Removes member `index` and announces it ([`Session::announce_leave`]).
    fn remove_and_announce(&mut self, index: usize) {
        let player = self.members[index].id;
        self.remove_member(index);
        self.announce_leave(player, index == 0);
    }

    /// Sends `frame` to every member that asked for `host`, but `except`. (Not a session
    /// event: not counted, not kept for resumes; a resume's reply names the host instead.)
    fn send_to_host_feature(&mut self, frame: &ServerFrame, except: Option<PlayerId>) {
        let recipients: Vec<PlayerId> = self
            .members
            .iter()
            .filter(|m| m.features.contains(Features::HOST) && Some(m.id) != except)
            .map(|m| m.id)
            .collect();
        for to in recipients {
            self.send(to, frame.clone());
        }
    }

    /// `player`'s connection is gone (or the connection a member resumed from): a member
    /// with a resume token is away for the grace period, any other leaves and the others get
    /// `playerLeave`.
    fn disconnect(&mut self, player: PlayerId) {
        if let Some(at) = self.kicked.iter().position(|k| k.connection == player) {
            let kicked = self.kicked.swap_remove(at);
            self.outputs.push_back(Output::Release {
                player: kicked.member,
            });
            return;
        }
        let Some(index) = self
            .member_of_connection(player)
            .and_then(|member| self.position(member))
        else {
            return;
        };
        let grace = self.limits.resume_grace_ms;
        let member = &mut self.members[index];
        if member.away.is_some() {
            return;
        }
        if member.secret.is_some() && grace > 0 {
            member.away = Some(Box::new(Away {
                deadline_ms: self.now_ms.saturating_add(grace),
                sent_when_gone: member.events_sent(self.events),
            }));
            let player = member.id;
            self.outputs.push_back(Output::Away { player });
            self.outputs
                .push_back(Output::Changed(Change::MemberAway(player)));
            return;
        }
        self.remove_and_announce(index);
    }

    /// A new connection (`connection`) asks for the seat its token names, having received
    /// `received` of the events sent to that seat since its last welcome.
    fn resume(
        &mut self,
        connection: PlayerId,
        request: ResumeRequest,
        subject: Option<Arc<String>>,
        features: Features,
    ) {
        let ResumeRequest { token, received } = request;
        let index = self
            .position(token.player)
            .filter(|_| token.session == self.id);
        // A token found in another account's hands moves no seat: it is as good as none.
        let valid = index.filter(|&i| {
            let member = &self.members[i];
            let secret = member.secret;
            secret.is_some_and(|secret| token.has_secret(secret)) && member.subject == subject
        });
        let Some(index) = valid else {
            return self.refuse_resume(
                connection,
                ErrorCode::InvalidResumeToken,
                "the resume token is not valid: used already, expired, or never issued",
            );
        };
        let member = &self.members[index];
        let sent = member.events_sent(self.events);
        let received = match (received, &member.away) {
            (Some(received), _) => received,
            (None, Some(away)) => away.sent_when_gone,
            // Taking over a connection that seems open: what it was sent, it is taken to have.
            (None, None) => sent,
        };
        if received > sent && !member.uncounted {
            let message = format!(
                "`received` is {received}, but this seat was sent {sent} events since its \
                 last sessionJoin or sessionResume"
            );
            return self.refuse_resume(connection, ErrorCode::ReceivedTooMany, &message);
        }
        // The events it is missing: the welcome's own it lacks, or those after `received`.
        // (`received` is at most `sent` here, so the sum cannot pass `self.events`.)
        let missing_from = match member.uncounted {
            true => None,
            false => received
                .checked_sub(member.welcome_events)
                .map(|after_welcome| member.events_from + after_welcome),
        };
        let player = token.player;
        let replaced = member.away.is_none();
        // Single use: the next resume needs the token given now.
        let secret = self.new_secret();
        let new_token = self.token(
            player,
            secret.expect("a session that issued tokens has secrets"),
        );
        let events = self.events;
        let member = &mut self.members[index];
        member.secret = secret;
        member.resumed_from = Some(connection);
        member.away = None;
        member.events_from = events;
        member.uncounted = false;
        member.features = features;
        let host = features
            .contains(Features::HOST)
            .then(|| self.host())
            .flatten();
        if replaced {
            self.outputs.push_back(Output::Replaced { player });
        }
        self.outputs.push_back(Output::Rebind {
            from: connection,
            to: player,
        });
        self.outputs
            .push_back(Output::Changed(Change::MemberBack(player)));
        let replay: Option<Vec<ServerFrame>> = missing_from
            .and_then(|from| self.log.since(from))
            .map(|frames| frames.cloned().collect());
        let welcome_events = match replay {
            Some(frames) => {
                let replay = Replay::Frames {
                    missed: frames.len(),
                };
                let reply = reply::session_resume(self.id, player, &new_token, replay, host);
                self.send(player, reply);
                let count = frames.len();
                for frame in frames {
                    self.send(player, frame);
                }
                count
            }
            None => {
                let default = self.player_format.default_data().clone();
                let own = self.members[index].data.clone().unwrap_or(default.clone());
                let others = self.members.iter().filter(|m| m.id != player);
                let members: Vec<_> = others.map(|m| (m.id, m.data.clone())).collect();
                let count = members.len();
                let replay = Replay::Snapshot {
                    session_data: &self.session_data,
                    player_data: &own,
                    spelling: self.spelling,
                    members: count,
                };
                let reply = reply::session_resume(self.id, player, &new_token, replay, host);
                self.send(player, reply);
                if !members.is_empty() {
                    let burst = JoinBurst::new(self.spelling, default, members);
                    self.outputs
                        .push_back(Output::SendJoinBurst { to: player, burst });
                }
                count
            }
        };
        self.members[index].welcome_events = welcome_events as u64;
        self.tell(
            player,
            ToPlayer::Resumed {
                session: self.id,
                player,
            },
        );
    }

    /// Answers a resume with error `code`: the connection stays in the lobby, the seat and
    /// its token as they were.
    fn refuse_resume(&mut self, connection: PlayerId, code: ErrorCode, message: &str) {
        let frame = reply::error(ServerCommand::SessionResume, code, Some(message));
        self.send(connection, frame);
        self.tell(connection, ToPlayer::ResumeRefused);
    }

    /// A new secret for a resume token, if the host seeded the session.
    fn new_secret(&mut self) -> Option<u128> {
        let rng = self.secrets.as_mut()?;
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        Some(u128::from_le_bytes(bytes))
    }

    fn token(&self, player: PlayerId, secret: u128) -> ResumeToken {
        ResumeToken {
            session: self.id,
            player,
            secret,
        }
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
        self.take_egress_for(index, frame, recipients, frame.command())
    }

    /// Whether member `index`'s egress budget takes `frame` to `recipients` members; if not,
    /// it is sent error 20 in `reply`.
    fn take_egress_for(
        &mut self,
        index: usize,
        frame: &ServerFrame,
        recipients: u64,
        reply: ServerCommand,
    ) -> bool {
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
        let refusal = reply::error(reply, ErrorCode::EgressBudget, Some(&message));
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

    /// Queues event `frame` for every member; its bytes are shared, not copied.
    fn broadcast(&mut self, frame: ServerFrame) {
        self.broadcast_except(frame, None);
    }

    /// Queues event `frame` for every member but `except`, numbers it, and keeps it in the
    /// log while some member could resume.
    fn broadcast_except(&mut self, frame: ServerFrame, except: Option<PlayerId>) {
        let resumable = self.members.iter().any(|m| m.secret.is_some());
        let limit = self.limits.resume_replay_bytes;
        self.log.record(self.events, &frame, resumable, limit);
        self.events += 1;
        self.outputs.push_back(Output::Broadcast { frame, except });
    }
}
