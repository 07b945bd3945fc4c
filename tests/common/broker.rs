//! A real mosquitto broker for the MQTT tests: started on a free loopback port with a
//! generated configuration, stopped by pid when dropped; it can be stopped and started
//! again on the same port to test broker outages. Options add a TLS listener and
//! user/password authentication.

use super::free_port;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the broker (not on a user's PATH).
const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";

/// PEM contents of a TLS listener.
#[derive(Debug, Clone)]
pub struct BrokerTls {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// How the broker is set up beyond a plain anonymous listener.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// A second listener with TLS (server certificate only, no client certificates).
    pub tls: Option<BrokerTls>,
    /// Only this user (name, password) is let in; anonymous clients are refused.
    pub user: Option<(String, String)>,
}

pub struct Broker {
    dir: tempfile::TempDir,
    options: BrokerOptions,
    port: u16,
    tls_port: Option<u16>,
    child: Option<Child>,
}

impl Broker {
    /// A broker on a free port, accepting anonymous clients and messages up to 256 MiB.
    pub fn start() -> Self {
        Self::start_with(BrokerOptions::default())
    }

    /// A broker set up as `options` says, on free ports.
    pub fn start_with(options: BrokerOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(tls) = &options.tls {
            for (name, contents) in [("ca.pem", &tls.ca), ("server.pem", &tls.cert), ("server.key", &tls.key)] {
                std::fs::write(dir.path().join(name), contents).expect("broker TLS file");
            }
        }
        if let Some((user, password)) = &options.user {
            let status = Command::new(MOSQUITTO_PASSWD)
                .arg("-b")
                .arg("-c")
                .arg(dir.path().join("passwords"))
                .arg(user)
                .arg(password)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .expect("mosquitto_passwd is installed");
            assert!(status.success(), "mosquitto_passwd failed: {status}");
        }
        let mut broker = Self {
            dir,
            options,
            port: 0,
            tls_port: None,
            child: None,
        };
        for _ in 0..8 {
            broker.port = free_port();
            broker.tls_port = broker.options.tls.is_some().then(free_port);
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
        let dir = self.dir.path().display();
        // Running as root, mosquitto would switch to its own user, which cannot read the
        // files in this private temporary directory; `user root` keeps it (ignored when
        // not started as root).
        let mut config = format!(
            "user root\nmax_packet_size 268435456\npersistence false\nset_tcp_nodelay true\nlistener {} 127.0.0.1\n",
            self.port
        );
        if let Some(tls_port) = self.tls_port {
            config.push_str(&format!(
                "listener {tls_port} 127.0.0.1\ncafile {dir}/ca.pem\ncertfile {dir}/server.pem\nkeyfile {dir}/server.key\n"
            ));
        }
        match self.options.user {
            Some(_) => config.push_str(&format!("allow_anonymous false\npassword_file {dir}/passwords\n")),
            None => config.push_str("allow_anonymous true\n"),
        }
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
        let ports: Vec<u16> = [Some(self.port), self.tls_port].into_iter().flatten().collect();
        while Instant::now() < deadline {
            if ports.iter().all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok()) {
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

    /// Port of the TLS listener (set up with [`BrokerOptions::tls`]).
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("the broker has a TLS listener")
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
