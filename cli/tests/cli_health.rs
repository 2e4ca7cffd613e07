//! A node whose disk fills: on a real full file system (a 2 MiB tmpfs mounted in a mount
//! namespace of its own), `node start` refuses writes with the reason, says so in `status`
//! (text and `--json`), keeps serving reads, and once the filler is removed exits with
//! status 1; started again, as its service manager would, it takes writes and has every
//! acknowledged one. And a data directory the file system refuses is exit 1, not 2.
//!
//! Everything that must see the tmpfs runs inside the namespace: one shell script
//! (`unshare --user --map-root-user --mount`), whose output and logs the test checks. A
//! machine without `unshare`, or where it is not allowed, fails this test: it is not
//! skipped.

mod cli_support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cli_support::{BIN, cli, stderr, stdout, wait_for};

/// The scenario, run in the namespace as `sh -eu script BIN MOUNT OUT`. Markers on its
/// standard output (`name=value`) say what happened; every wait is a bounded loop.
const SCRIPT: &str = r#"
BIN=$1; MNT=$2; OUT=$3
mount -t tmpfs -o size=2m tmpfs "$MNT"
echo "mounted=$(df -k "$MNT" | tail -1 | awk '{print $2}')"
DATA="$MNT/data"
export SOFTADASTRA_DATA_DIR="$DATA"
export SOFTADASTRA_TRANSPORT_ENABLED=false
export SOFTADASTRA_STORAGE_SEGMENT_SIZE=65536
export SOFTADASTRA_STORAGE_AUTO_COMPACT=false
export SOFTADASTRA_TICK_INTERVAL_MS=100
# Long enough that only the freed disk ends the refusal in this test.
export SOFTADASTRA_HEALTH_EXIT_AFTER_MS=120000
sa() { "$BIN" --no-color "$@"; }
PID=
# A node left running when the script stops early is killed.
trap 'if [ -n "$PID" ]; then kill -9 $PID 2>/dev/null || true; fi' EXIT

running() {
  sa status --json 2>/dev/null | grep -q '"node":{[^}]*"running":true'
}

start_node() { # $1: log name
  # The binary itself in the background (not through `sa`, a function that would run in
  # a subshell): $PID is the node's, for kill and wait.
  "$BIN" --no-color node start --log-level debug > "$OUT/$1.out" 2> "$OUT/$1.err" &
  PID=$!
  i=0
  until running; do
    i=$((i + 1))
    if [ $i -gt 150 ] || ! kill -0 $PID 2>/dev/null; then
      echo "$1=did-not-start"; exit 1
    fi
    sleep 0.1
  done
  echo "$1=running"
}

wait_exit() { # $1: what; waits up to 60 s for $PID to exit and prints its status
  i=0
  while kill -0 $PID 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 600 ]; then echo "$1-exit=still-running"; kill -9 $PID; break; fi
    sleep 0.1
  done
  set +e; wait $PID; code=$?; set -e
  PID=
  echo "$1-exit=$code"
}

sa --node-id tmpfs-node node init > /dev/null
start_node node1
sa store put before-full acknowledged > /dev/null
echo "before-full=ok"

# Fill the file system (dd stops at ENOSPC).
dd if=/dev/zero of="$MNT/filler" bs=4096 > /dev/null 2>&1 || true
echo "free-after-fill=$(df -k "$MNT" | tail -1 | awk '{print $4}')"

# Values of 16 KiB: the log's 64 KiB segment fills, the next one cannot be made.
head -c 16384 /dev/zero | tr '\0' 'v' > "$OUT/value"
n=0; refused=no
while [ $n -lt 40 ]; do
  set +e
  sa store put "full-$n" --value-file "$OUT/value" > "$OUT/put-$n.out" 2> "$OUT/put-$n.err"
  code=$?
  set -e
  if [ $code -ne 0 ]; then refused=$code; break; fi
  n=$((n + 1))
done
echo "puts-accepted=$n"
echo "first-refusal-exit=$refused"
cp "$OUT/put-$n.err" "$OUT/first-refusal.err"

set +e
sa store put later 1 > /dev/null 2> "$OUT/later.err"
echo "later-put-exit=$?"
set -e
sa status --json > "$OUT/status.json"
sa status > "$OUT/status.txt"
sa store get before-full --raw > "$OUT/read-while-refused"
echo
echo "node1-alive-while-full=$(kill -0 $PID 2>/dev/null && echo yes || echo no)"

# Free the disk: the node's probe sees it and the node exits 1 for a restart.
rm "$MNT/filler"
wait_exit node1

# What the service manager does: start it again.
start_node node2
sa store put after-restart accepted > /dev/null
echo "after-restart-put=ok"
sa status --json > "$OUT/status-after.json"
sa store list --json > "$OUT/list-after.json"
kill -TERM $PID
wait_exit node2
"#;

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn marker<'a>(output: &'a str, name: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name}= in:\n{output}"))
}

#[test]
fn a_full_disk_refuses_writes_says_why_and_the_restarted_node_takes_writes_once_freed() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("mnt");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&mount).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let script = dir.path().join("full-disk.sh");
    std::fs::write(&script, SCRIPT).unwrap();
    // A process group of its own: on a timeout the script and every node it started are
    // killed together.
    let mut child = Command::new("unshare")
        .process_group(0)
        .args(["--user", "--map-root-user", "--mount", "sh", "-eu"])
        .arg(&script)
        .arg(BIN)
        .arg(&mount)
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("script.out")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("script.err")).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "this test needs `unshare` (util-linux) to mount a small tmpfs in a mount \
                 namespace: {e}"
            )
        });
    let status = wait_for(Duration::from_secs(300), || child.try_wait().ok().flatten());
    if status.is_none() {
        // SAFETY: kill has no memory preconditions; the group is the script's own.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
    }
    let output = read(dir.path(), "script.out");
    let errors = read(dir.path(), "script.err");
    let logs = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_default();
    let context = format!(
        "script output:\n{output}\nscript errors:\n{errors}\nnode1 log:\n{}\nnode2 log:\n{}",
        logs("node1.err"),
        logs("node2.err")
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "the scenario did not run to its end (is unshare allowed here?)\n{context}"
    );
    assert_eq!(marker(&output, "mounted"), "2048", "{context}");
    assert_eq!(marker(&output, "free-after-fill"), "0", "{context}");

    // Writes are refused with the reason, exit 1.
    let accepted: usize = marker(&output, "puts-accepted").parse().unwrap();
    assert!(
        accepted < 40,
        "the full disk never refused a write\n{context}"
    );
    assert_eq!(marker(&output, "first-refusal-exit"), "1", "{context}");
    let first = read(&out, "first-refusal.err");
    assert!(
        first.contains("no space left on device"),
        "{first}\n{context}"
    );
    assert_eq!(marker(&output, "later-put-exit"), "1", "{context}");
    let later = read(&out, "later.err");
    assert!(
        later.contains("refuses writes") && later.contains("no space left on device"),
        "{later}"
    );

    // `status` shows it, with the reason, while the node keeps running and serving reads.
    let status: serde_json::Value = serde_json::from_str(&read(&out, "status.json")).unwrap();
    assert_eq!(status["node"]["running"], true, "{status}");
    assert_eq!(status["health"]["status"], "writes_refused", "{status}");
    let reason = status["health"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("refuses writes") && reason.contains("no space left on device"),
        "{reason}"
    );
    let text = read(&out, "status.txt");
    assert!(
        text.contains(&format!("writes refused: {reason}")),
        "{text}"
    );
    assert_eq!(read(&out, "read-while-refused"), "acknowledged");
    assert_eq!(
        marker(&output, "node1-alive-while-full"),
        "yes",
        "{context}"
    );

    // Freed, it exits 1 (for the service manager), having logged why.
    assert_eq!(marker(&output, "node1-exit"), "1", "{context}");
    let log1 = logs("node1.err");
    assert!(
        log1.contains("ERROR") && log1.contains("writes refused"),
        "{log1}"
    );
    assert!(log1.contains("takes writes again"), "{log1}");

    // Restarted, it takes writes and has every acknowledged one.
    assert_eq!(marker(&output, "node2"), "running", "{context}");
    assert_eq!(marker(&output, "after-restart-put"), "ok", "{context}");
    let after: serde_json::Value = serde_json::from_str(&read(&out, "status-after.json")).unwrap();
    assert_eq!(after["health"]["status"], "healthy", "{after}");
    let list: serde_json::Value = serde_json::from_str(&read(&out, "list-after.json")).unwrap();
    let keys: Vec<&str> = list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"before-full") && keys.contains(&"after-restart"),
        "{keys:?}"
    );
    for n in 0..accepted {
        let key = format!("full-{n}");
        assert!(
            keys.contains(&key.as_str()),
            "{key} was acknowledged: {keys:?}"
        );
    }
    assert!(
        !keys.contains(&"later"),
        "a refused write is not there: {keys:?}"
    );
    assert_eq!(marker(&output, "node2-exit"), "0", "{context}");
}

#[test]
fn a_data_directory_the_file_system_refuses_is_exit_1_not_2() {
    // /sys refuses to make directories, even for root: a file system error, not a
    // configuration one, so that a service manager restarts the node (a late mount).
    let data = Path::new("/sys/softadastra-cli-health/data");
    for args in [&["node", "start"][..], &["store", "put", "k", "v"][..]] {
        let out = cli(data, args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(
            err.contains("data directory: cannot create") && err.contains("/sys/"),
            "{err}"
        );
    }
    let out = cli(data, &["store", "put", "k", "v", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "io_error", "{doc}");
    assert_eq!(doc["error"]["exit"], 1, "{doc}");
    assert!(!data.exists());
}
