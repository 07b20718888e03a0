//! A connection task that is cancelled (its `JoinHandle` aborted) or panics, at each await
//! point of a player's life, still lets go of everything: its session gets exactly the
//! disconnect it is owed, the socket closes, the connections gauge and the permit come back.
//!
//! Each test runs the real [`run`] over a real loopback TCP connection. A test that needs to
//! decide when (or whether) a session answers registers a fake one made with
//! [`SessionHandle::channel`] and plays it by hand. A panic is raised with the test-only seam
//! [`Stopping::panic_waiters`](crate::shutdown::Stopping::panic_waiters).
//!
//! The tests run on tokio's current-thread runtime: while a test runs, the connection task is
//! parked at its await point, so an abort or a panic lands exactly there.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessionserver_core::{
    Command, ConnectionConfig, Limits, PlayerId, SessionId, ToPlayer, ToSession,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

use super::{run, Shared};
use crate::counting::Counted;
use crate::frame_reader::{client_frame, FrameReader};
use crate::memory::Occupancy;
use crate::peer::Peer;
use crate::registry::Registry;
use crate::session_task::{PlayerMsg, SessionHandle, SessionMsg};
use crate::socket::Outbox;

/// Bound on every wait, so that a hang fails the test instead of stalling it.
const PATIENCE: Duration = Duration::from_secs(10);

/// How a connection task is made to end.
#[derive(Clone, Copy, Debug)]
enum End {
    /// Its `JoinHandle` is aborted: the task is dropped at its await point.
    Cancel,
    /// It panics at its await point.
    Panic,
}

/// One server's shared state, without a listener: connections are handed to [`run`] by hand.
struct Rig {
    shared: Arc<Shared>,
    /// Stands for `--max-connections`: each connection holds one permit.
    permits: Arc<Semaphore>,
    /// The count of open connections (the gauge).
    open: Occupancy,
    /// What the shutdown waits on: each connection holds a sender.
    alive: mpsc::Sender<()>,
    _all_done: mpsc::Receiver<()>,
}

impl Rig {
    fn new() -> Self {
        let (alive, all_done) = mpsc::channel(1);
        Rig {
            open: Occupancy::default(),
            alive,
            _all_done: all_done,
            shared: Arc::new(Shared {
                registry: Registry::default(),
                send_queue_bytes: 1 << 20,
                budget: crate::budget::Budget::new(1 << 30),
                fragment_timeout: std::time::Duration::from_secs(10),
                limits: Limits::default(),
                player_limits: Arc::new(Limits::default()),
                connection: ConnectionConfig::default(),
                epoch: Instant::now(),
                metrics: Default::default(),
                stopping: Default::default(),
            }),
            permits: Arc::new(Semaphore::new(4)),
        }
    }

    /// A connection task over a fresh loopback TCP connection, built as http.rs builds one
    /// after the upgrade, and the client's end of it.
    async fn connect(&self) -> (JoinHandle<()>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (client, accepted) = tokio::join!(
            TcpStream::connect(listener.local_addr().unwrap()),
            listener.accept()
        );
        let (server, addr): (TcpStream, SocketAddr) = accepted.unwrap();
        let (read, write) = server.into_split();
        let outbox = Outbox::new(
            write,
            self.shared.send_queue_bytes,
            self.shared.budget.clone(),
        );
        let reader = FrameReader::new(read, Vec::new(), 64 * 1024);
        let permit = self.permits.clone().try_acquire_owned().unwrap();
        let counted = Counted::new(permit, self.open.enter(), self.alive.clone());
        let task = run(reader, outbox, addr, self.shared.clone(), counted, None);
        let task = tokio::spawn(task.expect("a player ID"));
        (task, client.unwrap())
    }

    /// Ends a connection task and waits until it has ended.
    async fn end(&self, task: JoinHandle<()>, how: End) {
        match how {
            End::Cancel => task.abort(),
            End::Panic => self.shared.stopping.panic_waiters(),
        }
        let result = tokio::time::timeout(PATIENCE, task)
            .await
            .expect("the connection task did not end within 10 s");
        let error = result.expect_err("the task ended by itself instead");
        match how {
            End::Cancel => assert!(error.is_cancelled(), "{error}"),
            End::Panic => assert!(error.is_panic(), "{error}"),
        }
    }

    /// A line of `/metrics`, as a number.
    fn metric(&self, name: &str) -> i64 {
        let text = self.shared.metrics.render(self.open.count(), 0);
        let value = text
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"));
        value.parse().unwrap()
    }

    /// No connection is counted any more: the gauge is back to 0, every permit is free, the
    /// shutdown would not wait for any, and each of the `ended` connections was counted as
    /// closed.
    fn assert_released(&self, ended: i64) {
        assert_eq!(self.metric("sessionserver_connections"), 0, "the gauge");
        assert_eq!(self.permits.available_permits(), 4, "the permits");
        assert_eq!(
            self.alive.strong_count(),
            1,
            "only the rig's sender is left"
        );
        assert_eq!(
            self.metric("sessionserver_closes_total{reason=\"client\"}"),
            ended,
            "closes counted"
        );
    }
}

/// A session played by the test: it sees every input and answers only when told.
struct FakeSession {
    id: SessionId,
    inbox: mpsc::Receiver<SessionMsg>,
}

/// One input as the fake session received it.
struct Received {
    input: ToSession,
    /// The joiner's connection (a real session keeps it while the player is a member).
    peer: Option<Peer>,
    answer: Option<oneshot::Sender<ToPlayer>>,
}

impl FakeSession {
    fn register(rig: &Rig) -> Self {
        let (handle, inbox) = SessionHandle::channel();
        let id = rig
            .shared
            .registry
            .create_session(handle, 8, false)
            .unwrap();
        FakeSession { id, inbox }
    }

    async fn next(&mut self) -> Received {
        let msg = tokio::time::timeout(PATIENCE, self.inbox.recv())
            .await
            .expect("the session got nothing within 10 s")
            .expect("the session's inbox closed");
        match msg {
            SessionMsg::Player(msg) => {
                let PlayerMsg {
                    input,
                    peer,
                    answer,
                } = *msg;
                Received {
                    input,
                    peer,
                    answer,
                }
            }
            SessionMsg::Describe { .. } => panic!("unexpected Describe"),
        }
    }

    /// Nothing more is in the inbox. (Called after the connection task has ended, when its
    /// `Drop` has sent whatever it sends: with room in the inbox that is done at once.)
    fn assert_empty(&mut self) {
        match self.inbox.try_recv() {
            Err(TryRecvError::Empty) => {}
            Ok(SessionMsg::Player(msg)) => panic!("unexpected {:?}", msg.input),
            Ok(SessionMsg::Describe { .. }) => panic!("unexpected Describe"),
            Err(TryRecvError::Disconnected) => panic!("the inbox closed"),
        }
    }
}

async fn send_text(client: &mut TcpStream, text: &str) {
    client
        .write_all(&client_frame(true, 1, text.as_bytes()))
        .await
        .unwrap();
}

/// The next frame from the server (opcode, payload); `None` once the socket is closed.
async fn read_frame(client: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    tokio::time::timeout(PATIENCE, async {
        let mut head = [0u8; 2];
        client.read_exact(&mut head).await.ok()?;
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let len = match head[1] & 0x7f {
            126 => u64::from(client.read_u16().await.ok()?),
            127 => client.read_u64().await.ok()?,
            n => u64::from(n),
        };
        let mut payload = vec![0; usize::try_from(len).unwrap()];
        client.read_exact(&mut payload).await.ok()?;
        Some((head[0] & 0x0f, payload))
    })
    .await
    .expect("nothing from the server within 10 s")
}

async fn read_text(client: &mut TcpStream) -> String {
    match read_frame(client).await {
        Some((1, payload)) => String::from_utf8(payload).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Reads until the server closes the socket; the close frame's code, if one came first.
/// Fails if the socket is still open after 10 s.
async fn closed(client: &mut TcpStream) -> Option<u16> {
    let mut code = None;
    while let Some((opcode, payload)) = read_frame(client).await {
        if opcode == 8 {
            code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
        }
    }
    code
}

/// What the socket shows of the task's end: a panic is told 1011; a cancelled task closes it
/// without a word.
fn expected_close(how: End) -> Option<u16> {
    match how {
        End::Cancel => None,
        End::Panic => Some(1011),
    }
}

/// Up to the point where the connection is in its session: joined (answered `Joined`), and
/// its next command reached the session. Returns the player and the joiner's peer.
async fn into_session(client: &mut TcpStream, session: &mut FakeSession) -> (PlayerId, Peer) {
    send_text(
        client,
        &format!(
            r#"{{"command":"joinSession","sessionID":{}}}"#,
            session.id.0
        ),
    )
    .await;
    let join = session.next().await;
    let ToSession::Join { player, .. } = join.input else {
        panic!("expected a join, got {:?}", join.input);
    };
    let _ = join.answer.unwrap().send(ToPlayer::Joined {
        session: session.id,
    });
    // A command after the answer reaches the session: the player is a member, and its task
    // is back to reading frames.
    send_text(client, r#"{"command":"updatePlayer","player":{"n":1}}"#).await;
    let update = session.next().await;
    assert!(
        matches!(update.input, ToSession::Command { player: p, command: Ok(Command::UpdatePlayer(_)) } if p == player),
        "{:?}",
        update.input
    );
    (player, join.peer.expect("a join carries the joiner's peer"))
}

/// The session gets exactly one input more: this player's disconnect. Like a real session,
/// the fake one then lets go of the player's peer.
async fn assert_disconnect_only(session: &mut FakeSession, player: PlayerId, peer: Peer) {
    let next = session.next().await;
    assert_eq!(next.input, ToSession::Disconnect { player });
    assert!(next.answer.is_none());
    drop(peer);
    session.assert_empty();
}

async fn ends_in_the_lobby(how: End) {
    let rig = Rig::new();
    let mut session = FakeSession::register(&rig);
    let (task, mut client) = rig.connect().await;
    // In a session, then out of it again: back in the lobby, it owes that session nothing.
    let (_player, peer) = into_session(&mut client, &mut session).await;
    send_text(&mut client, r#"{"command":"leaveSession"}"#).await;
    let leave = session.next().await;
    assert!(matches!(
        leave.input,
        ToSession::Command {
            command: Ok(Command::LeaveSession),
            ..
        }
    ));
    let _ = leave.answer.unwrap().send(ToPlayer::Left);
    drop(peer);
    // Answered by the lobby itself (error 2: not in a session): the task reads frames again.
    send_text(&mut client, r#"{"command":"leaveSession"}"#).await;
    assert_eq!(
        read_text(&mut client).await,
        r#"{"command":"sessionLeave","error":2}"#
    );

    rig.end(task, how).await;
    session.assert_empty();
    assert_eq!(closed(&mut client).await, expected_close(how));
    rig.assert_released(1);
}

async fn ends_while_joining(how: End) {
    let rig = Rig::new();
    let mut session = FakeSession::register(&rig);
    let (task, mut client) = rig.connect().await;
    send_text(
        &mut client,
        &format!(
            r#"{{"command":"joinSession","sessionID":{}}}"#,
            session.id.0
        ),
    )
    .await;
    // The join reached the session, which does not answer (yet): the task waits for it.
    let join = session.next().await;
    let ToSession::Join { player, .. } = join.input else {
        panic!("expected a join, got {:?}", join.input);
    };
    let _unanswered = join.answer;

    rig.end(task, how).await;
    // The session may have added the player: it is told the player is gone.
    assert_disconnect_only(&mut session, player, join.peer.unwrap()).await;
    assert_eq!(closed(&mut client).await, expected_close(how));
    rig.assert_released(1);
}

async fn ends_in_the_session(how: End) {
    let rig = Rig::new();
    let mut session = FakeSession::register(&rig);
    let (task, mut client) = rig.connect().await;
    let (player, peer) = into_session(&mut client, &mut session).await;

    rig.end(task, how).await;
    assert_disconnect_only(&mut session, player, peer).await;
    assert_eq!(closed(&mut client).await, expected_close(how));
    rig.assert_released(1);
}

async fn ends_while_leaving(how: End) {
    let rig = Rig::new();
    let mut session = FakeSession::register(&rig);
    let (task, mut client) = rig.connect().await;
    let (player, peer) = into_session(&mut client, &mut session).await;
    send_text(&mut client, r#"{"command":"leaveSession"}"#).await;
    // The leave reached the session, which does not answer (yet).
    let leave = session.next().await;
    assert!(matches!(
        leave.input,
        ToSession::Command {
            player: p,
            command: Ok(Command::LeaveSession),
        } if p == player
    ));
    let _unanswered = leave.answer;

    rig.end(task, how).await;
    // Whether or not the session has handled the leave, the disconnect makes sure.
    assert_disconnect_only(&mut session, player, peer).await;
    assert_eq!(closed(&mut client).await, expected_close(how));
    rig.assert_released(1);
}

#[tokio::test]
async fn cancelled_in_the_lobby_owes_its_old_session_nothing() {
    ends_in_the_lobby(End::Cancel).await;
}

#[tokio::test]
async fn panicking_in_the_lobby_owes_its_old_session_nothing() {
    ends_in_the_lobby(End::Panic).await;
}

#[tokio::test]
async fn cancelled_while_joining_disconnects_from_the_session() {
    ends_while_joining(End::Cancel).await;
}

#[tokio::test]
async fn panicking_while_joining_disconnects_from_the_session() {
    ends_while_joining(End::Panic).await;
}

#[tokio::test]
async fn cancelled_in_a_session_disconnects_from_it() {
    ends_in_the_session(End::Cancel).await;
}

#[tokio::test]
async fn panicking_in_a_session_disconnects_from_it() {
    ends_in_the_session(End::Panic).await;
}

#[tokio::test]
async fn cancelled_while_leaving_disconnects_from_the_session() {
    ends_while_leaving(End::Cancel).await;
}

#[tokio::test]
async fn panicking_while_leaving_disconnects_from_the_session() {
    ends_while_leaving(End::Panic).await;
}

/// With a real session task: a member whose task is cancelled is gone for the others
/// (`playerLeave`), and when the last member's task panics the session ends.
#[tokio::test]
async fn a_real_session_sees_a_cancelled_member_leave_and_ends_with_the_last() {
    let rig = Rig::new();
    let (host_task, mut host) = rig.connect().await;
    send_text(&mut host, r#"{"command":"createSession"}"#).await;
    assert!(read_text(&mut host)
        .await
        .starts_with(r#"{"command":"sessionJoin","error":0"#));
    let (guest_task, mut guest) = rig.connect().await;
    send_text(&mut guest, r#"{"command":"joinSession","sessionID":-1}"#).await;
    let joined = read_text(&mut guest).await;
    assert!(
        joined.starts_with(r#"{"command":"sessionJoin","error":0"#),
        "{joined}"
    );
    let player_join = read_text(&mut host).await;
    assert!(
        player_join.starts_with(r#"{"command":"playerJoin","error":0,"playerID":1"#),
        "{player_join}"
    );
    assert_eq!(rig.shared.registry.session_count(), 1);

    rig.end(guest_task, End::Cancel).await;
    assert_eq!(
        read_text(&mut host).await,
        r#"{"command":"playerLeave","error":0,"playerID":1}"#
    );
    // The session let go of the guest's connection: its socket is closed.
    assert_eq!(closed(&mut guest).await, None);
    assert_eq!(rig.shared.registry.session_count(), 1);

    rig.end(host_task, End::Panic).await;
    assert_eq!(closed(&mut host).await, Some(1011));
    // The session task ends once it has handled the last member's disconnect; nothing here
    // signals that but the registry, so it is polled (bounded).
    tokio::time::timeout(PATIENCE, async {
        while rig.shared.registry.session_count() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the session still exists 10 s after its last member went");
    rig.assert_released(2);
}

/// The subject an upgrade's auth check gave stays with the connection, for the session
/// wiring to read; a connection without one has none.
#[tokio::test]
async fn a_connection_keeps_the_subject_of_its_upgrade() {
    let rig = Rig::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_client, accepted) = tokio::join!(
        TcpStream::connect(listener.local_addr().unwrap()),
        listener.accept()
    );
    let (_, write) = accepted.unwrap().0.into_split();
    let outbox = Outbox::new(write, 1 << 20, rig.shared.budget.clone());
    let mut connections = Vec::new();
    for (id, subject) in [(7, Some("ada")), (8, None)] {
        let permit = rig.permits.clone().try_acquire_owned().unwrap();
        let counted = Counted::new(permit, rig.open.enter(), rig.alive.clone());
        let connection = super::PlayerConnection::new(
            PlayerId(id),
            outbox.clone(),
            rig.shared.clone(),
            counted,
            subject.map(str::to_owned),
        );
        assert_eq!(connection.subject(), subject);
        connections.push(connection);
    }
    drop(connections);
    assert_eq!(rig.permits.available_permits(), 4);
}
