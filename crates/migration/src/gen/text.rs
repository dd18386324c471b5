//! Synthetic message content: text slices of a seeded corpus, AI-SDK UI parts, tool payloads,
//! and the unicode and huge-JSON outliers.
//!
//! Sizes are log-normal with the medians of data-model §5.2 but tighter tails: §5.2's p99
//! values (text 20 KB, tool output 200 KB) give a mean tool output of ~13 KB and a 3.3 GB
//! `medium` preset, six times §5.4's estimate. Realistic mode uses text median 250 B / p99
//! 6 KB and tool output median 500 B / p99 20 KB (draws capped at 5x p99), which lands on the
//! §5.4 sizes; the 1-5 MB outliers stay (`content_huge`).

use serde_json::{json, Map, Value};

use super::rng::Rng;

const WORDS: &[&str] = &[
    "the",
    "supplier",
    "award",
    "tender",
    "delivery",
    "invoice",
    "quote",
    "price",
    "contract",
    "schedule",
    "please",
    "confirm",
    "documents",
    "attached",
    "review",
    "status",
    "update",
    "order",
    "shipment",
    "warehouse",
    "approval",
    "deadline",
    "budget",
    "item",
    "quantity",
    "unit",
    "report",
    "dataset",
    "column",
    "rows",
    "summary",
    "analysis",
    "question",
    "answer",
    "we",
    "will",
    "send",
    "today",
    "tomorrow",
    "thanks",
    "hello",
    "regards",
    "team",
    "agent",
    "tool",
    "result",
    "search",
    "file",
    "page",
    "section",
    "table",
    "value",
    "total",
    "note",
    "proveedor",
    "entrega",
    "factura",
    "cotización",
    "precio",
    "contrato",
    "por",
    "favor",
    "confirmar",
    "documentos",
    "adjuntos",
    "revisión",
    "estado",
    "pedido",
    "envío",
    "gracias",
    "hola",
    "saludos",
    "mañana",
    "hoy",
    "licitación",
    "adjudicación",
    "cantidad",
    "año",
];

const TOOLS: &[&str] = &[
    "searchDocuments",
    "readFile",
    "createQuote",
    "sendWhatsapp",
    "queryDataset",
    "summarizeTable",
    "lookupSupplier",
    "updateAward",
    "fetchUrl",
    "runSql",
];

/// Content sizes: realistic follows data-model §5.2; lean keeps the shapes, shrinks the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentMode {
    Realistic,
    Lean,
}

impl ContentMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentMode::Realistic => "realistic",
            ContentMode::Lean => "lean",
        }
    }
}

/// A seeded corpus to slice text from: drawing words one by one for millions of rows would
/// dominate generation time.
pub struct Corpus {
    text: String,
}

impl Corpus {
    pub fn new(rng: &mut Rng) -> Corpus {
        let mut text = String::with_capacity(300_000);
        let mut sentence_len = 0;
        while text.len() < 262_144 {
            let word = rng.pick(WORDS);
            if sentence_len == 0 {
                let mut chars = word.chars();
                if let Some(first) = chars.next() {
                    text.extend(first.to_uppercase());
                    text.push_str(chars.as_str());
                }
            } else {
                text.push_str(word);
            }
            sentence_len += 1;
            if sentence_len > 6 && rng.chance(0.15) {
                text.push_str(". ");
                sentence_len = 0;
            } else {
                text.push(' ');
            }
        }
        Corpus { text }
    }

    /// About `len` bytes of text starting at a random place.
    pub fn slice(&self, rng: &mut Rng, len: usize) -> String {
        let len = len.max(1);
        let mut out = String::with_capacity(len + 8);
        while out.len() < len {
            let want = (len - out.len()).min(self.text.len() / 2);
            let mut start = rng.below((self.text.len() - want) as u64) as usize;
            while !self.text.is_char_boundary(start) {
                start += 1;
            }
            let mut end = (start + want).min(self.text.len());
            while !self.text.is_char_boundary(end) {
                end += 1;
            }
            out.push_str(self.text[start..end].trim_start());
            if out.is_empty() {
                out.push('x');
            }
        }
        out
    }
}

pub struct Content<'a> {
    pub corpus: &'a Corpus,
    pub mode: ContentMode,
}

/// A step's part twice: as story_parts stores it (written before tools ran) and as the
/// reaction item's content embeds it (tool results merged in).
pub struct PartPair {
    pub stored: Value,
    pub embedded: Value,
    pub is_tool: bool,
    pub tool_call: Option<(String, String, Value)>,
}

impl Content<'_> {
    fn text_len(&self, rng: &mut Rng) -> usize {
        let (median, p99) = match self.mode {
            ContentMode::Realistic => (250.0, 6_000.0),
            ContentMode::Lean => (60.0, 600.0),
        };
        (rng.lognormal(median, p99) as usize).clamp(1, (p99 * 5.0) as usize)
    }

    pub fn text(&self, rng: &mut Rng) -> String {
        let len = self.text_len(rng);
        self.corpus.slice(rng, len)
    }

    fn tool_output(&self, rng: &mut Rng) -> Value {
        let (median, p99) = match self.mode {
            ContentMode::Realistic => (500.0, 20_000.0),
            ContentMode::Lean => (120.0, 2_000.0),
        };
        let size = (rng.lognormal(median, p99) as usize).clamp(16, (p99 * 5.0) as usize);
        let rows = (size / 80).clamp(1, 25_000);
        if rows > 3 {
            let table: Vec<Value> = (0..rows)
                .map(|row| json!([row, self.corpus.slice(rng, 40), rng.below(100_000)]))
                .collect();
            json!({"columns": ["n", "label", "amount"], "rows": table})
        } else {
            json!({"text": self.corpus.slice(rng, size)})
        }
    }

    /// Context content: app-defined state; structure contexts carry big previews.
    pub fn context_content(&self, rng: &mut Rng, structure: bool) -> Value {
        let (median, p99) = match (self.mode, structure) {
            (ContentMode::Realistic, true) => (8_000.0, 500_000.0),
            (ContentMode::Realistic, false) => (1_000.0, 20_000.0),
            (ContentMode::Lean, true) => (400.0, 4_000.0),
            (ContentMode::Lean, false) => (100.0, 1_000.0),
        };
        let size = (rng.lognormal(median, p99) as usize).clamp(8, 1_000_000);
        let mut map = Map::new();
        if rng.chance(0.6) {
            map.insert("title".into(), json!(self.corpus.slice(rng, 30).trim()));
        }
        if structure {
            let rows = (size / 120).max(1);
            let preview: Vec<Value> = (0..rows)
                .map(|n| json!({"row": n, "label": self.corpus.slice(rng, 60), "value": rng.below(1_000_000)}))
                .collect();
            map.insert("datasetId".into(), json!(rng.uuid()));
            map.insert("preview".into(), Value::Array(preview));
        } else {
            map.insert("notes".into(), json!(self.corpus.slice(rng, size)));
        }
        Value::Object(map)
    }

    /// One part, drawn from the §5.2 type mix (step-start 20, text 25, reasoning 15, tool 33,
    /// source-url 3, file 2, data/extension 2).
    pub fn part(&self, rng: &mut Rng, diverge_tool_state: bool) -> PartPair {
        let kind = rng.pick_weighted(&[20.0, 25.0, 15.0, 33.0, 3.0, 2.0, 2.0]);
        let same = |value: Value| PartPair {
            stored: value.clone(),
            embedded: value,
            is_tool: false,
            tool_call: None,
        };
        match kind {
            0 => same(json!({"type": "step-start"})),
            1 => same(json!({"type": "text", "text": self.text(rng)})),
            2 => same(json!({"type": "reasoning", "text": self.text(rng)})),
            3 => {
                let tool = *rng.pick(TOOLS);
                let call_id = format!("call_{}", rng.hex(24));
                let input = json!({"query": self.corpus.slice(rng, 40), "limit": rng.range(1, 50)});
                let failed = rng.chance(0.05);
                let output = self.tool_output(rng);
                let mut embedded = json!({
                    "type": format!("tool-{tool}"),
                    "toolCallId": call_id,
                    "state": if failed { "output-error" } else { "output-available" },
                    "input": input,
                });
                if failed {
                    embedded["errorText"] = json!("tool failed: timeout");
                } else {
                    embedded["output"] = output.clone();
                }
                let stored = if diverge_tool_state {
                    json!({"type": format!("tool-{tool}"), "toolCallId": call_id, "state": "input-available", "input": input})
                } else {
                    embedded.clone()
                };
                PartPair {
                    stored,
                    embedded,
                    is_tool: true,
                    tool_call: Some((
                        call_id,
                        tool.to_string(),
                        if failed { Value::Null } else { output },
                    )),
                }
            }
            4 => same(json!({
                "type": "source-url",
                "sourceId": format!("src_{}", rng.hex(8)),
                "url": format!("https://docs.example.com/{}", rng.hex(12)),
                "title": self.corpus.slice(rng, 24).trim(),
            })),
            5 => same(json!({
                "type": "file",
                "mediaType": "application/pdf",
                "url": format!("https://files.example.com/{}.pdf", rng.hex(16)),
                "filename": format!("{}.pdf", rng.hex(6)),
            })),
            _ => {
                if rng.chance(0.5) {
                    same(
                        json!({"type": "data-progress", "data": {"done": rng.below(100), "total": 100}}),
                    )
                } else {
                    same(
                        json!({"type": "codex-event", "event": {"kind": "note", "seq": rng.below(1000)}}),
                    )
                }
            }
        }
    }

    /// 1-5 MB: a base64 data-URL file part.
    pub fn huge_part(&self, rng: &mut Rng) -> Value {
        let size = rng.range(1_000_000, 5_000_000) as usize;
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut data = String::with_capacity(size + 40);
        data.push_str("data:application/pdf;base64,");
        while data.len() < size {
            let word = rng.next_u64();
            for shift in 0..10 {
                data.push(B64[((word >> (shift * 6)) & 63) as usize] as char);
            }
        }
        json!({"type": "file", "mediaType": "application/pdf", "filename": "scan.pdf", "url": data})
    }

    /// A value nested `depth` levels deep.
    pub fn deep_value(depth: usize) -> Value {
        let mut value = json!({"leaf": true});
        for level in 0..depth {
            value = json!({"level": depth - level, "child": value});
        }
        value
    }

    /// Text with emoji/ZWJ sequences, RTL, combining marks, Spanish, a BOM, a long token.
    pub fn unicode_text(&self, rng: &mut Rng) -> String {
        let samples = [
            "\u{feff}Hola, ¿cómo está? Añadiré la cotización mañana.",
            "Family: 👨\u{200d}👩\u{200d}👧\u{200d}👦 flags 🇪🇸🇦🇷 skin 👍🏽",
            "مرحبا بالعالم — עברית — mixed RTL ‏text‎",
            "Combining: e\u{301} n\u{303} a\u{30a}\u{0327} Z\u{351}\u{36b}\u{343}",
            "Ελληνικά, русский, 日本語のテキスト, 한국어",
        ];
        let mut text = samples[rng.below(samples.len() as u64) as usize].to_string();
        if rng.chance(0.5) {
            text.push(' ');
            text.push_str(&"x".repeat(10_000));
        }
        text
    }
}

/// Stands for a lone surrogate in generated text; only the file writer turns it into the
/// escape `\ud800` (a Rust string cannot hold a lone surrogate). A noncharacter, so it never
/// occurs otherwise.
pub const LONE_SURROGATE_MARK: char = '\u{fdd0}';
