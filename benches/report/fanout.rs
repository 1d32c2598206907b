//! Section `fanout`: not written yet.

use anyhow::Result;

use crate::{Ctx, Section};

pub async fn run(_ctx: &Ctx) -> Result<Section> {
    Ok(Section {
        title: "fanout".into(),
        body: "not measured yet\n".into(),
    })
}
