//! Two players in one session, each a dot moving on a grid: each game loop ticks, moves its
//! dot, sends it (`update_player`), and draws what it sees from the client's kept session.
//!
//! `cargo run -p sessionserver-client --example dots` starts a server in this process;
//! `… --example dots -- ws://localhost:7000/` plays on a server of yours.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sessionserver_client::{Client, Event, Options, SessionOptions};

/// A player's data: the session's default fixes these keys for every member.
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
struct Dot {
    name: String,
    x: i64,
    y: i64,
}

const MOVES: usize = 5;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, server) = match std::env::args().nth(1) {
        Some(url) => (url, None),
        None => {
            let server = sessionserver::start(sessionserver::Config {
                bind: "127.0.0.1".parse()?,
                port: 0,
                ..Default::default()
            })
            .await?;
            (format!("ws://{}/", server.local_addr()), Some(server))
        }
    };

    let ada = Client::connect(&url, Options::default()).await?;
    let session = ada
        .create_session(
            &serde_json::json!({"title": "dots"}),
            &Dot::default(),
            SessionOptions::default(),
        )
        .await?;
    println!("Ada created session {}", session.id);
    let bob = Client::connect(&url, Options::default()).await?;
    bob.join_session(session.id, None).await?;
    println!("Bob joined session {}", session.id);

    let ada = tokio::spawn(play("Ada", ada, (1, 0)));
    let bob = tokio::spawn(play("Bob", bob, (0, 1)));
    ada.await??;
    bob.await??;
    if let Some(server) = server {
        server.shutdown().await;
    }
    Ok(())
}

/// One player's game loop: a tick moves the dot; events are drawn as they come.
async fn play(
    name: &'static str,
    client: Client,
    (dx, dy): (i64, i64),
) -> Result<(), sessionserver_client::Error> {
    let mut me = Dot {
        name: name.to_owned(),
        ..Dot::default()
    };
    client.update_player(&me).await?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut moves = 0;
    while moves < MOVES {
        tokio::select! {
            _ = tick.tick() => {
                me.x += dx;
                me.y += dy;
                client.update_player(&me).await?;
                moves += 1;
                println!("{name} sees {}", board(&client));
            }
            Some(event) = client.next_event() => match event {
                Event::PlayerJoin { data, .. } => {
                    let dot: Dot = data.parse().unwrap_or_default();
                    println!("{name}: {} is here", if dot.name.is_empty() { "someone" } else { &dot.name });
                }
                Event::PlayerLeave { player_id, .. } => println!("{name}: player {player_id} left"),
                Event::Reconnecting { attempt, .. } => println!("{name}: reconnecting (attempt {attempt})"),
                Event::Resumed { .. } => println!("{name}: back"),
                _ => {}
            },
        }
    }
    client.leave_session().await?;
    client.close().await;
    Ok(())
}

/// Every dot the client knows of, from its kept session.
fn board(client: &Client) -> String {
    client.with_session(|session| {
        let Some(session) = session else {
            return "nothing (not in a session)".to_owned();
        };
        session
            .players
            .values()
            .filter_map(|data| data.parse::<Dot>().ok())
            .map(|dot| format!("{}({},{})", dot.name, dot.x, dot.y))
            .collect::<Vec<_>>()
            .join(" ")
    })
}
