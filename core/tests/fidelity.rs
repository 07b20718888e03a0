mod common;

use common::Harness;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test(unsupported = test)]
fn data_comes_back_byte_for_byte() {
    let session = r#"{"z":1.000000000001,"a":1543236582000,"m":-20,"f":3.23,"big":123456789012345678901234567890,"u":"héllo 🎮","e":"\u00e9\n\"q\"","n":null,"arr":[1,{"x":[]}]}"#;
    let player = r#"{"name":"ünï","score":9007199254740993}"#;
    let mut h = Harness::new();
    let (a, b) = (h.connect(), h.connect());
    h.send(
        a,
        &format!(r#"{{"command":"createSession","session":{session},"player":{player}}}"#),
    );
    let join = h.recv_text(a);
    assert!(
        join.ends_with(&format!(r#""session":{session},"player":{player}}}"#)),
        "{join}"
    );
    h.send(b, r#"{"command":"joinSession","sessionID":-1}"#);
    h.recv(b);
    h.recv(b);
    h.recv(a);
    let update = r#"{"score":1e400,"name":"日本"}"#;
    h.send(
        b,
        &format!(r#"{{"command":"updatePlayer","player":{update}}}"#),
    );
    assert!(h.recv_text(a).ends_with(&format!(r#""player":{update}}}"#)));
}
