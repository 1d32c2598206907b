//! Section `websocket`: not written yet.

use anyhow::Result;

use crate::{Ctx, Section};

pub async fn run(_ctx: &Ctx) -> Result<Section> {
    Ok(Section {
        title: "websocket".into(),
        body: "not measured yet\n".into(),
    })
}
