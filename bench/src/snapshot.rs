//! Join snapshot bytes: what a joiner receives on the wire when it joins a session of
//! `--players` members (its `sessionJoin` and one `playerJoin` per member, each with that
//! member's playerData of about `--payload-bytes`), once without offering permessage-deflate
//! and once offering it, against the same session.
//!
//! Blocking sockets and the client of `ws.rs`: the members are set up one after another, then
//! only the two joiners read.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::common::{self, ResultLine, Target};
use crate::ws::{self, Xorshift};

#[derive(clap::Args, Debug, Clone)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub target: Target,
    /// Members in the session when the joiners come (the joiner makes one more).
    #[arg(long, default_value_t = 99)]
    pub players: usize,
    /// Bytes of each member's playerData (realistic JSON: a name, a position, a list of
    /// entities with random positions and health).
    #[arg(long, default_value_t = 300)]
    pub payload_bytes: usize,
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    deflate: bool,
    inflater: ws::Inflater,
    rng: Xorshift,
    /// Bytes of the frames read so far (after the upgrade response).
    wire: usize,
    /// Bytes of their payloads as text (inflated).
    text: usize,
}

impl Client {
    fn connect(
        addr: &str,
        host: &str,
        path: &str,
        offer: bool,
        seed: u64,
    ) -> Result<Client, String> {
        let addr = addr
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("no address")?;
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        let mut rng = Xorshift::new(seed);
        let offer = offer.then_some(ws::BROWSER_DEFLATE_OFFER);
        let request = ws::upgrade_request_with(host, path, &mut rng, offer);
        (&stream)
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut client = Client {
            stream,
            buf: Vec::new(),
            deflate: false,
            inflater: ws::Inflater::with_context(),
            rng,
            wire: 0,
            text: 0,
        };
        loop {
            if let Some(end) = ws::upgrade_response(&client.buf)? {
                client.deflate =
                    memchr::memmem::find(&client.buf[..end], b"permessage-deflate").is_some();
                client.buf.drain(..end);
                return Ok(client);
            }
            client.fill()?;
        }
    }

    fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 16 << 10];
        let n = self
            .stream
            .read(&mut chunk)
            .map_err(|e| format!("receive: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn send(&mut self, text: &str) -> Result<(), String> {
        let mut frame = Vec::new();
        ws::put_client_frame(&mut frame, ws::OP_TEXT, text.as_bytes(), self.rng.mask());
        self.stream.write_all(&frame).map_err(|e| e.to_string())
    }

    /// The next text message (inflated), counting its bytes.
    fn next_text(&mut self) -> Result<String, String> {
        loop {
            if let Some((frame, used)) = ws::parse_frame_deflate(&self.buf, self.deflate)? {
                let text = match frame.opcode {
                    ws::OP_TEXT if frame.compressed => Some(
                        String::from_utf8_lossy(self.inflater.inflate(frame.payload)?).into_owned(),
                    ),
                    ws::OP_TEXT => Some(String::from_utf8_lossy(frame.payload).into_owned()),
                    ws::OP_CLOSE => return Err("closed by the server".into()),
                    _ => None,
                };
                self.buf.drain(..used);
                if let Some(text) = text {
                    self.wire += used;
                    self.text += text.len();
                    return Ok(text);
                }
                continue;
            }
            self.fill()?;
        }
    }

    fn until(&mut self, command: &str) -> Result<String, String> {
        loop {
            let text = self.next_text()?;
            if common::command_of(&text) == command {
                return Ok(text);
            }
        }
    }
}

/// A member's playerData: its name, position, and entities until it is `bytes` long.
fn player_data(i: usize, bytes: usize, rng: &mut Xorshift) -> String {
    let mut data = format!(
        r#"{{"name":"player-{i}","x":{},"y":{},"pad":["#,
        i * 7,
        i * 3
    )
    .into_bytes();
    // Room for the closing `]}`.
    ws::push_entities(&mut data, rng, bytes.saturating_sub(2));
    data.extend_from_slice(b"]}");
    String::from_utf8(data).expect("the entities are ASCII")
}

pub fn run(args: SnapshotArgs) -> Result<(), String> {
    measure(&args).map_err(|e| format!("snapshot: {e}"))
}

fn measure(args: &SnapshotArgs) -> Result<(), String> {
    let (addr, path) = ws::split_url(&args.target.url)?;
    let mut rng = Xorshift::new(0x5eed);
    let mut members = Vec::with_capacity(args.players);
    let mut session = None;
    for i in 0..args.players.max(1) {
        let mut member = Client::connect(addr, addr, path, false, i as u64 + 1)?;
        match session {
            None => member.send(
                r#"{"command":"createSession","session":{},"player":{"name":"","x":0,"y":0,"pad":[]}}"#,
            )?,
            Some(id) => member.send(&format!(r#"{{"command":"joinSession","sessionID":{id}}}"#))?,
        }
        let joined = member.until("sessionJoin")?;
        if common::int_field(&joined, "\"error\":") != Some(0) {
            return Err(format!("join refused: {joined}"));
        }
        session = session.or(common::int_field(&joined, "\"sessionID\":"));
        let data = player_data(i, args.payload_bytes, &mut rng);
        member.send(&format!(r#"{{"command":"updatePlayer","player":{data}}}"#))?;
        // Its own update comes back once it is stored.
        loop {
            let text = member.until("playerUpdate")?;
            if text.contains(&format!(r#""name":"player-{i}""#)) {
                break;
            }
        }
        members.push(member);
    }
    let id = session.ok_or("no session")?;
    let mut line = ResultLine::new("snapshot", &args.target.server);
    line.put("players", args.players)
        .put("payload_bytes", args.payload_bytes);
    let mut wire = [0usize; 2];
    for (n, offer) in [false, true].into_iter().enumerate() {
        let mut joiner = Client::connect(addr, addr, path, offer, 1000 + n as u64)?;
        joiner.send(&format!(r#"{{"command":"joinSession","sessionID":{id}}}"#))?;
        joiner.until("sessionJoin")?;
        let mut seen = 0;
        while seen < args.players {
            if common::command_of(&joiner.next_text()?) == "playerJoin" {
                seen += 1;
            }
        }
        let name = if offer { "deflate" } else { "plain" };
        if offer && !joiner.deflate {
            return Err("the server did not agree to permessage-deflate".into());
        }
        wire[n] = joiner.wire;
        line.put(&format!("{name}_wire_bytes"), joiner.wire)
            .put(&format!("{name}_text_bytes"), joiner.text);
        joiner.send(r#"{"command":"leaveSession"}"#)?;
        joiner.until("sessionLeave")?;
    }
    line.num(
        "plain_over_deflate",
        common::ratio(wire[0] as f64, wire[1] as f64),
        2,
    );
    line.print();
    drop(members);
    Ok(())
}
