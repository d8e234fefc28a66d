//! IncrementalAlterConfigs (Kafka API 44), sent with the `tansu-sans-io` codec.
//!
//! rust-rdkafka wraps only the legacy AlterConfigs, which replaces a topic's whole config
//! set (silently dropping other overrides) and which tansu does not implement. The
//! incremental API sets just the keys we name and works on Kafka ≥ 2.3 and tansu alike.

use std::time::Duration;

use bytes::BytesMut;
use tansu_sans_io::{
    ApiKey as _, Body, ErrorCode, Frame, Header, IncrementalAlterConfigsRequest,
    incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

use crate::{ADMIN_TIMEOUT, Error, Result};

const TOPIC_RESOURCE: i8 = 2;
const OP_SET: i8 = 0;
const API_VERSION: i16 = 0;

/// Sets `configs` on `topic`, leaving its other configs alone.
pub(crate) async fn set_topic_configs(bootstrap: &str, topic: &str, configs: &[(&str, &str)]) -> Result<()> {
    let fail = |message: String| Error::Protocol { bootstrap: bootstrap.to_owned(), message };
    if !crate::plaintext() {
        // This one request is sent without librdkafka, so without its TLS and SASL.
        return Err(fail(
            "fixing topic configs speaks PLAINTEXT only (it is sent without librdkafka); set \
             retention.ms with your cluster's own tools, or run `reco topics init` without --fix"
                .into(),
        ));
    }
    // Any broker forwards topic config changes to the controller; use the first one listed.
    let broker = bootstrap.split(',').next().unwrap_or(bootstrap).trim();

    let body: Body = IncrementalAlterConfigsRequest::default()
        .resources(Some(vec![
            AlterConfigsResource::default().resource_type(TOPIC_RESOURCE).resource_name(topic.to_owned()).configs(
                Some(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            AlterableConfig::default()
                                .name((*k).to_owned())
                                .config_operation(OP_SET)
                                .value(Some((*v).to_owned()))
                        })
                        .collect(),
                ),
            ),
        ]))
        .validate_only(false)
        .into();
    let header = Header::Request {
        api_key: IncrementalAlterConfigsRequest::KEY,
        api_version: API_VERSION,
        correlation_id: 1,
        client_id: Some("reco".into()),
    };
    let request = Frame::request(header, body).map_err(|e| fail(format!("encode: {e:?}")))?;

    let exchange = async {
        let mut stream = TcpStream::connect(broker).await?;
        stream.write_all(&request).await?;
        let size = stream.read_i32().await?;
        let mut buf = BytesMut::zeroed(usize::try_from(size).unwrap_or(0) + 4);
        buf[..4].copy_from_slice(&size.to_be_bytes());
        stream.read_exact(&mut buf[4..]).await?;
        Ok::<_, std::io::Error>(buf.freeze())
    };
    let response = timeout(ADMIN_TIMEOUT + Duration::from_secs(1), exchange)
        .await
        .map_err(|_| fail("timed out".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let frame = Frame::response_from_bytes(response, IncrementalAlterConfigsRequest::KEY, API_VERSION)
        .map_err(|e| fail(format!("decode: {e:?}")))?;
    let Body::IncrementalAlterConfigsResponse(response) = frame.body else {
        return Err(fail(format!("unexpected response {}", frame.body.api_name())));
    };
    for r in response.responses.unwrap_or_default() {
        let code = ErrorCode::try_from(r.error_code).unwrap_or(ErrorCode::UnknownServerError);
        if code != ErrorCode::None {
            return Err(Error::Topic {
                topic: r.resource_name,
                message: format!("alter configs failed: {code:?} {}", r.error_message.unwrap_or_default()),
            });
        }
    }
    Ok(())
}
