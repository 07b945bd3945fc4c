//! A real mosquitto broker for the MQTT tests: started on a free loopback port with a
//! generated configuration, stopped by pid when dropped; it can be stopped and started
//! again on the same port to test broker outages.

use super::free_port;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the broker (not on a user's PATH).
const MOSQUITTO: &str = "/usr/sbin/mosquitto";

pub struct Broker {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    /// A broker on a free port, accepting anonymous clients and messages up to 256 MiB.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut broker = Self {
            dir,
            port: 0,
            child: None,
        };
        for _ in 0..8 {
            broker.port = free_port();
            if broker.spawn() {
                return broker;
            }
        }
        panic!("mosquitto did not start");
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }

    fn spawn(&mut self) -> bool {
        let config = format!(
            "listener {} 127.0.0.1\nallow_anonymous true\nmax_packet_size 268435456\npersistence false\n",
            self.port
        );
        std::fs::write(self.config_path(), config).expect("broker config");
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (Debian package mosquitto)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Environment that points a node at this broker over plain MQTT.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("COMMUNICATION_PROTOCOL", "mqtt".to_string()),
            ("BROKER_ADDRESS", "127.0.0.1".to_string()),
            ("BROKER_PORT", self.port.to_string()),
            ("MQTT_USE_SSL", "false".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Kills the broker (its clients see the connection drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spawn() {
            assert!(Instant::now() < deadline, "mosquitto did not start again on its port");
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
