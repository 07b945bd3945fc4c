//! The communication protocol and the MQTT broker (spec config.md §5 steps 8–13, §6):
//! normalising `CommunicationProtocol`, the broker checks, and the derived broker
//! address, port, client ID and user name. Called by `validate` only.

use super::load::Raw;
use super::types::{NodeType, Protocol, Secret};
use super::validate::{invalid, Node};
use super::{single_org, ConfigError};

/// Which protocol names `CommunicationProtocol` lists (§5 step 8).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ProtocolKinds {
    pub(super) mqtt: bool,
    pub(super) http: bool,
    pub(super) wiotp: bool,
}

impl ProtocolKinds {
    /// Items are compared case-insensitively but not trimmed (` http` is not recognised,
    /// as in the original); unknown items are ignored.
    pub(super) fn parse(value: &str) -> ProtocolKinds {
        let mut kinds = ProtocolKinds::default();
        for item in value.split(',') {
            if item.eq_ignore_ascii_case("mqtt") {
                kinds.mqtt = true;
            } else if item.eq_ignore_ascii_case("http") {
                kinds.http = true;
            } else if item.eq_ignore_ascii_case("wiotp") {
                kinds.wiotp = true;
            }
        }
        kinds
    }

    /// The normalised protocol for a node of `node_type`.
    pub(super) fn normalise(self, node_type: NodeType) -> Result<Protocol, ConfigError> {
        let ProtocolKinds { mqtt, http, wiotp } = self;
        if !mqtt && !http && !wiotp {
            return Err(invalid(
                "Invalid communication protocol, please choose either HTTP or MQTT or WIoTP",
            ));
        }
        match node_type {
            NodeType::Ess => {
                if usize::from(mqtt) + usize::from(http) + usize::from(wiotp) > 1 {
                    return Err(invalid(
                        "Invalid communication protocol, please choose one of HTTP, MQTT or WIoTP",
                    ));
                }
                Ok(if mqtt {
                    Protocol::Mqtt
                } else if wiotp {
                    Protocol::Wiotp
                } else {
                    Protocol::Http
                })
            }
            NodeType::Css => {
                if mqtt && wiotp {
                    return Err(invalid(
                        "Invalid communication protocol, please choose either MQTT or WIoTP",
                    ));
                }
                Ok(match (http, mqtt, wiotp) {
                    (true, true, _) => Protocol::HybridMqtt,
                    (true, _, true) => Protocol::HybridWiotp,
                    (true, false, false) => Protocol::Http,
                    (false, true, _) => Protocol::Mqtt,
                    (false, false, _) => Protocol::Wiotp,
                })
            }
        }
    }
}

/// The broker settings after §6's defaults.
pub(super) struct Broker {
    pub(super) address: String,
    pub(super) port: u16,
    pub(super) client_id: String,
    pub(super) user_name: String,
}

/// §5 steps 9–13: broker checks and broker defaults (§6).
pub(super) fn broker(raw: &Raw, node: &Node, protocol: Protocol, kinds: ProtocolKinds) -> Result<Broker, ConfigError> {
    let (comms, mqtt) = (&raw.comms, &raw.mqtt);
    let css = node.node_type == NodeType::Css;
    if css && comms.css_on_wiotp && kinds.mqtt {
        return Err(invalid("CSS on Watson IoTP should use wiotp protocol"));
    }
    let user_name_needed = kinds.mqtt || (kinds.wiotp && (css || comms.using_edge_connector));
    if user_name_needed && mqtt.mqtt_user_name.is_empty() && !mqtt.mqtt_password.is_empty() {
        return Err(invalid(
            "Please specify the user name for MQTT communication in the configuration file",
        ));
    }
    let mut broker = Broker {
        address: mqtt.broker_address.clone(),
        port: mqtt.broker_port,
        client_id: mqtt.mqtt_client_id.clone(),
        user_name: mqtt.mqtt_user_name.clone(),
    };
    if protocol == Protocol::Http {
        return Ok(broker);
    }
    let broker_list = broker.address.starts_with('[');
    if css {
        if comms.css_on_wiotp && !broker_list {
            return Err(invalid("Please specify the broker addresses for messaging groups"));
        }
        if !comms.css_on_wiotp && broker_list {
            return Err(invalid("Please provide one broker address for CSS outside WIoTP"));
        }
        let single_org = single_org(node.node_type, comms.css_on_wiotp, &node.org_id);
        css_broker_defaults(&mut broker, kinds, comms.css_on_wiotp, single_org);
    } else if broker_list {
        return Err(invalid("Please provide one broker address"));
    } else if kinds.wiotp {
        ess_wiotp_defaults(&mut broker, node, comms.using_edge_connector, &mqtt.mqtt_password)?;
    } else {
        default_to(&mut broker.client_id, || format!("ESS-{}", random_id()));
        default_to(&mut broker.address, || "localhost".to_string());
        default_port(&mut broker.port, 1883);
    }
    Ok(broker)
}

/// §5 step 12 / §6 for an ESS on the Watson IoT Platform.
fn ess_wiotp_defaults(
    broker: &mut Broker,
    node: &Node,
    using_edge_connector: bool,
    password: &Secret,
) -> Result<(), ConfigError> {
    if using_edge_connector {
        default_to(&mut broker.client_id, || "a:sync-service".to_string());
        default_to(&mut broker.address, || "edge-connector".to_string());
    } else {
        if password.is_empty() {
            return Err(invalid("Please provide password for MQTT connection"));
        }
        broker.user_name = "use-token-auth".to_string();
        default_to(&mut broker.client_id, || {
            format!("g:{}:{}:{}", node.org_id, node.destination_type, node.destination_id)
        });
        default_to(&mut broker.address, || wiotp_broker(Some(&node.org_id)));
    }
    default_port(&mut broker.port, 8883);
    Ok(())
}

/// §5 step 13 / §6 for a CSS that uses a broker.
fn css_broker_defaults(broker: &mut Broker, kinds: ProtocolKinds, css_on_wiotp: bool, single_org: Option<&str>) {
    if kinds.wiotp && !css_on_wiotp {
        default_to(&mut broker.address, || wiotp_broker(single_org));
        default_port(&mut broker.port, 8883);
        if let Some(org) = single_org {
            default_to(&mut broker.client_id, || format!("A:{org}:CSS"));
        }
    } else if kinds.mqtt {
        default_to(&mut broker.address, || "localhost".to_string());
        default_port(&mut broker.port, 1883);
        default_to(&mut broker.client_id, || format!("CSS-{}", random_id()));
    }
}

fn wiotp_broker(org: Option<&str>) -> String {
    match org {
        Some(org) => format!("{org}.messaging.internetofthings.ibmcloud.com"),
        None => "messaging.internetofthings.ibmcloud.com".to_string(),
    }
}

fn default_to(field: &mut String, value: impl FnOnce() -> String) {
    if field.is_empty() {
        *field = value();
    }
}

fn default_port(field: &mut u16, port: u16) {
    if *field == 0 {
        *field = port;
    }
}

/// A random non-negative 63-bit number for generated MQTT client IDs (the original's are
/// non-negative too); they only need to differ between starts and nodes.
fn random_id() -> u64 {
    crate::random::u64() >> 1
}
