//! The local cloud for the benchmarks, started as a user starts it (`deploy local
//! start`) on a free port and stopped when dropped.

use std::process::Command;

pub struct LocalCloud(pub u16);

impl LocalCloud {
    pub fn start(args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = Command::new(env!("CARGO_BIN_EXE_deploy"))
            .args(["local", "start", "--port", &port.to_string()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        LocalCloud(port)
    }
}

impl Drop for LocalCloud {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_deploy"))
            .args(["local", "stop", "--port", &self.0.to_string()])
            .output();
    }
}
