//! A `citygrid serve` process on a free port, for tests over real HTTP: started, its address
//! read from the line it prints once it listens (no sleeps), killed when dropped (also when an
//! assertion fails).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running server; killed and reaped on drop.
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

/// `citygrid serve --bind 127.0.0.1:0 --data DATA` (add `--demo` and the rest to it).
pub fn serve(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_citygrid"));
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--data"]).arg(data).stderr(Stdio::null());
    cmd
}

/// `citygrid serve --demo --demo-preset tiny --bind 127.0.0.1:0 --data DATA`.
pub fn serve_tiny_demo(data: &Path) -> Command {
    let mut cmd = serve(data);
    cmd.args(["--demo", "--demo-preset", "tiny"]);
    cmd
}

impl Server {
    /// Spawns `cmd` and waits until it listens. Panics with the line it printed instead.
    pub fn start(cmd: &mut Command) -> Server {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn citygrid");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("citygrid listening on http://").map(str::to_owned) else {
            let _ = child.kill();
            let status = child.wait();
            panic!("the server did not start: it printed {line:?} and exited with {status:?}");
        };
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
