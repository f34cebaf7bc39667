//! [`EngineCheckpoint`]'s serde: the fields in declaration order, the two version-2 maps only
//! when `version >= 2`. A compact format (postcard) reads a struct as a sequence and may stop
//! early, so a version-1 value reads its eight fields and no more; a self-describing one reads
//! the fields by name, the missing maps empty.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::EngineCheckpoint;

const FIELDS: &[&str] = &[
    "version",
    "window_states",
    "sase_states",
    "join_states",
    "variables",
    "watermark_state",
    "events_processed",
    "output_events_emitted",
    "pattern_states",
    "join_operator_states",
];

/// The first version with `pattern_states` and `join_operator_states`.
const V2: u32 = 2;

impl Serialize for EngineCheckpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v2 = self.version >= V2;
        let mut st = s.serialize_struct("EngineCheckpoint", if v2 { 10 } else { 8 })?;
        st.serialize_field("version", &self.version)?;
        st.serialize_field("window_states", &self.window_states)?;
        st.serialize_field("sase_states", &self.sase_states)?;
        st.serialize_field("join_states", &self.join_states)?;
        st.serialize_field("variables", &self.variables)?;
        st.serialize_field("watermark_state", &self.watermark_state)?;
        st.serialize_field("events_processed", &self.events_processed)?;
        st.serialize_field("output_events_emitted", &self.output_events_emitted)?;
        if v2 {
            st.serialize_field("pattern_states", &self.pattern_states)?;
            st.serialize_field("join_operator_states", &self.join_operator_states)?;
        }
        st.end()
    }
}

impl<'de> Deserialize<'de> for EngineCheckpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("EngineCheckpoint", FIELDS, EngineVisitor)
    }
}

struct EngineVisitor;

impl<'de> Visitor<'de> for EngineVisitor {
    type Value = EngineCheckpoint;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an engine checkpoint")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut n = 0;
        macro_rules! field {
            () => {{
                n += 1;
                seq.next_element()?
                    .ok_or_else(|| de::Error::invalid_length(n - 1, &self))?
            }};
        }
        let version: u32 = field!();
        let mut cp = EngineCheckpoint {
            version,
            window_states: field!(),
            sase_states: field!(),
            join_states: field!(),
            variables: field!(),
            watermark_state: field!(),
            events_processed: field!(),
            output_events_emitted: field!(),
            pattern_states: BTreeMap::new(),
            join_operator_states: BTreeMap::new(),
        };
        if version >= V2 {
            cp.pattern_states = field!();
            cp.join_operator_states = field!();
        }
        Ok(cp)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut cp = EngineCheckpoint::default();
        let mut version = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "version" => version = Some(map.next_value()?),
                "window_states" => cp.window_states = map.next_value()?,
                "sase_states" => cp.sase_states = map.next_value()?,
                "join_states" => cp.join_states = map.next_value()?,
                "variables" => cp.variables = map.next_value()?,
                "watermark_state" => cp.watermark_state = map.next_value()?,
                "events_processed" => cp.events_processed = map.next_value()?,
                "output_events_emitted" => cp.output_events_emitted = map.next_value()?,
                "pattern_states" => cp.pattern_states = map.next_value()?,
                "join_operator_states" => cp.join_operator_states = map.next_value()?,
                other => return Err(de::Error::unknown_field(other, FIELDS)),
            }
        }
        cp.version = version.ok_or_else(|| de::Error::missing_field("version"))?;
        Ok(cp)
    }
}
