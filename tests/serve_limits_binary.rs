//! The real binary: SIGTERM with a half-sent request exits within the shutdown grace period;
//! commands whose output is cut short (`citygrid … | head -1`) end quietly, without a panic.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn citygrid() -> Command {
    Command::new(env!("CARGO_BIN_EXE_citygrid"))
}

#[test]
fn sigterm_with_a_half_sent_request_exits_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("citygrid.toml");
    // A header timeout far longer than the grace period: only the deadline ends the wait.
    std::fs::write(&config, "[limits]\nheader_timeout_secs = 120\nshutdown_grace_secs = 1\n").unwrap();
    let mut child = citygrid()
        .args(["serve", "--demo", "--demo-preset", "tiny", "--bind", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("citygrid listening on http://").unwrap_or_else(|| panic!("{line:?}")).to_owned();
    // One request in flight with half its head sent, one whole request answered.
    let mut half = TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Half: ").unwrap();
    let mut whole = TcpStream::connect(&addr).unwrap();
    whole.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    whole.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let sent = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("still running 20 s after SIGTERM with a 1 s grace period");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = sent.elapsed();
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(exit.success(), "{exit:?}\n{log}");
    assert!(took < Duration::from_secs(6), "exit took {took:?}\n{log}");
    assert!(log.contains("SIGTERM received") && log.contains("shut down"), "{log}");
    assert!(log.contains("grace period over"), "the half-sent request was cut at the deadline: {log}");
    drop(half);
}

/// Runs `command` with its stdout read for one line (or not at all) and then closed.
fn cut_short(mut command: Command, read_one_line: bool) -> (std::process::ExitStatus, String) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    if read_one_line {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "one line of output");
    } else {
        drop(stdout);
    }
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (child.wait().unwrap(), err)
}

fn assert_quiet_end(what: &str, (status, err): (std::process::ExitStatus, String)) {
    assert_ne!(status.code(), Some(101), "{what}: a panic\n{err}");
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{what}: {err}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert!(status.success() || status.signal() == Some(libc_sigpipe()), "{what}: {status:?}\n{err}");
    }
}

#[cfg(unix)]
fn libc_sigpipe() -> i32 {
    13
}

fn demo(dir: &Path) {
    let out = citygrid().args(["demo", "--preset", "tiny", "--out"]).arg(dir.join("data")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = citygrid().args(["demo", "--preset", "tiny", "--package"]).arg(dir.join("package")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn commands_piped_into_head_end_quietly() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    let data = dir.path().join("data");
    let cases = dir.path().join("cases.csv");
    let mut csv = String::from("id,lon,lat,event_type\n");
    for i in 0..20_000 {
        csv.push_str(&format!("{i},0,0,0102\n"));
    }
    std::fs::write(&cases, csv).unwrap();

    let mut route = citygrid();
    route.args(["route", "--file"]).arg(&cases).arg("--data").arg(&data);
    assert_quiet_end("route --file | head -1", cut_short(route, true));

    let mut locate = citygrid();
    locate.args(["locate", "0", "0", "--data"]).arg(&data);
    assert_quiet_end("locate, output closed", cut_short(locate, false));

    let mut import = citygrid();
    import.arg("import").arg(dir.path().join("package")).arg("--dry-run").arg("--data").arg(&data);
    assert_quiet_end("import --dry-run, output closed", cut_short(import, false));

    let mut validate = citygrid();
    validate.arg("validate").arg(dir.path().join("package/components.fgb")).arg("--data").arg(&data);
    assert_quiet_end("validate, output closed", cut_short(validate, false));
}
