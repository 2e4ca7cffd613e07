//! The control socket's bounds (issue 12, item 5), driving the real binary: a request line
//! longer than the node's limit, a client that sends nothing and one that sends its request
//! a byte at a time are refused with an error, and the node keeps answering the other
//! commands meanwhile; a write the node received and did not answer says it may have been
//! applied. (The credential rule, same user or root, is a unit test of
//! `caller_allowed` in cli/src/cli/control.rs: refusing a caller needs a second user.)
//! Every node runs on 127.0.0.1 on a free port, every wait and loop is bounded, and every
//! child is reaped.

mod cli_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use cli_support::{Node, json};
use serde_json::Value;

/// The node's bound on a request line, as cli/src/cli/control.rs sizes it: a `store put` at
/// the store's key and value limits with every byte escaped as `\u00XX`, plus 4 KiB.
const MAX_REQUEST_BYTES: usize = 6 * (softadastra::MAX_KEY_LEN + softadastra::MAX_VALUE_LEN) + 4096;

/// The node's time limit for receiving a request (`IO_TIMEOUT`).
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads one response line (64 KiB and 20 s at most) and parses it.
fn read_response(stream: &UnixStream) -> Value {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream)
        .take(64 * 1024)
        .read_line(&mut line)
        .expect("the node answers");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("response {line:?}: {e}"))
}

fn error_message(response: &Value) -> &str {
    assert_eq!(response["ok"], false, "{response}");
    response["error"]["message"].as_str().unwrap_or_default()
}

#[test]
fn oversized_control_request_is_refused_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Node::start(&data, &[]);
    let stream = UnixStream::connect(data.join("control.sock")).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // No newline anywhere: the node must stop reading at its limit, not wait for the end
    // of the line. Once it has answered and closed, the next write fails.
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0;
    for _ in 0..MAX_REQUEST_BYTES / chunk.len() + 2 {
        if (&stream).write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let response = read_response(&stream);
    let message = error_message(&response);
    assert!(
        message.contains(&format!("limit of {MAX_REQUEST_BYTES} bytes")),
        "the refusal names the limit: {message} (after {sent} bytes)"
    );
    assert_eq!(response["error"]["code"], "invalid_argument");
    // The node still answers, and counts the refusal.
    let status = json(&data, &["status"]);
    assert_eq!(status["node"]["running"], true, "{status}");
    assert_eq!(status["control"]["refused_requests"], 1, "{status}");
    assert!(
        node.log().contains("longer than the limit"),
        "the refusal is logged\n{}",
        node.log()
    );
}

#[test]
fn silent_control_client_does_not_block_other_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Node::start(&data, &[]);
    let socket = data.join("control.sock");
    let silent = UnixStream::connect(&socket).unwrap();
    // Another command is answered while the node still waits for the silent client...
    let status = json(&data, &["status"]);
    assert_eq!(status["node"]["running"], true, "{status}");
    silent.set_nonblocking(true).unwrap();
    let waiting = (&silent).read(&mut [0; 1]);
    assert!(
        matches!(&waiting, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the silent client was let go before the command was answered, so the command \
         waited behind it: {waiting:?}"
    );
    silent.set_nonblocking(false).unwrap();
    // ...and the silent client is let go with an error once the timeout has passed.
    let message = error_message(&read_response(&silent)).to_string();
    assert!(
        message.contains(&format!("not received within {} s", IO_TIMEOUT.as_secs())),
        "{message}"
    );
    assert_eq!(json(&data, &["status"])["control"]["refused_requests"], 1);
    // More silent clients than the node serves at once delay a command by about one
    // timeout, not one per client (12 in a row would take a minute).
    let flood: Vec<UnixStream> = (0..12)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    let started = Instant::now();
    let status = json(&data, &["status"]);
    assert_eq!(status["node"]["running"], true, "{status}");
    assert!(
        started.elapsed() < 3 * IO_TIMEOUT,
        "status took {:?} behind {} silent clients\n{}",
        started.elapsed(),
        flood.len(),
        node.log()
    );
}

#[test]
fn a_control_request_sent_a_byte_at_a_time_is_cut_off_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _node = Node::start(&data, &[]);
    let stream = UnixStream::connect(data.join("control.sock")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    // A space (JSON whitespace, a valid start of a request) every second: each read of the
    // node's gets a byte well within the timeout, so only a bound on the whole request
    // cuts this client off.
    let started = Instant::now();
    let mut reply = Vec::new();
    for i in 0..3 * IO_TIMEOUT.as_secs() {
        if (&stream).write_all(b" ").is_err() {
            break;
        }
        if i == 1 {
            // Meanwhile another command is answered, while the trickling client is still
            // being read (not answered yet).
            let status = json(&data, &["status"]);
            assert_eq!(status["node"]["running"], true, "{status}");
            stream.set_nonblocking(true).unwrap();
            let waiting = (&stream).read(&mut [0; 1]);
            stream.set_nonblocking(false).unwrap();
            assert!(
                matches!(&waiting, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
                "the trickling client was let go before the command was answered: {waiting:?}"
            );
        }
        let mut buf = [0; 4096];
        match (&stream).read(&mut buf) {
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    let elapsed = started.elapsed();
    if !reply.ends_with(b"\n") {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = BufReader::new(&stream)
            .take(64 * 1024)
            .read_until(b'\n', &mut reply);
    }
    let response: Value = serde_json::from_slice(&reply)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&reply)));
    let message = error_message(&response);
    assert!(message.contains("not received within"), "{message}");
    assert!(
        elapsed < 2 * IO_TIMEOUT,
        "cut off after {elapsed:?}, the timeout is {IO_TIMEOUT:?}"
    );
}

#[test]
fn a_write_the_node_does_not_answer_in_time_says_it_may_have_been_applied() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Node::start(&data, &[]);
    let pid = node.child.as_ref().unwrap().id() as i32;
    // A node that stops answering (stopped here, as a node stalled on a slow disk would
    // be): the command's request is sent, and no answer comes within its 30 s.
    // SAFETY: signals to the child this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let put = cli_support::cli(&data, &["store", "put", "late/1", "maybe"]);
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(put.status.code(), Some(1), "{}", cli_support::stdout(&put));
    let message = cli_support::stderr(&put);
    assert!(
        message.contains("did not answer within 30 s")
            && message.contains("store put may or may not have been applied"),
        "{message}"
    );
    // It was: the node, running again, read the request and applied it.
    let applied = cli_support::wait_for(Duration::from_secs(10), || {
        let out = cli_support::cli(&data, &["store", "get", "late/1", "--json"]);
        out.status.success().then_some(())
    });
    assert!(applied.is_some(), "{}", node.log());
}
