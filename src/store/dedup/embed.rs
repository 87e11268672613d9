//! A [`Judge`] that asks an OpenAI-compatible embeddings endpoint (`POST …/v1/embeddings`,
//! e.g. a local Ollama or llama.cpp server) where the method is unsure: two rules whose
//! embeddings have a cosine similarity of at least [`EmbeddingsConfig::same_cosine`] are the
//! same rule.
//!
//! Texts are redacted before they leave the machine. Vectors are cached in a SQLite file
//! (by model and text), so a rule is embedded once; and one judge makes at most
//! [`EmbeddingsConfig::max_calls`] HTTP requests (a judge is made per insert, and the store
//! asks it about at most a few candidates), after which it answers "cannot tell".

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use super::Judge;

/// Where and how to embed.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingsConfig {
    /// The server: `http://127.0.0.1:11434` or `…/v1` (`/v1/embeddings` is appended).
    pub base_url: String,
    /// The embedding model (`nomic-embed-text`, `text-embedding-3-small`).
    pub model: String,
    /// A bearer token, when the server wants one.
    pub api_key: Option<String>,
    /// Cosine similarity from which two rules are the same.
    pub same_cosine: f64,
    /// HTTP requests one judge may make.
    pub max_calls: usize,
    /// The cache database.
    pub cache: PathBuf,
    /// Per request.
    pub timeout: Duration,
}

impl EmbeddingsConfig {
    /// Defaults for a server and model: cosine 0.9, 2 calls, 20 s, the cache at `cache`.
    pub fn new(base_url: &str, model: &str, cache: PathBuf) -> EmbeddingsConfig {
        EmbeddingsConfig {
            base_url: base_url.to_string(),
            model: model.to_string(),
            api_key: None,
            same_cosine: 0.9,
            max_calls: 2,
            cache,
            timeout: Duration::from_secs(20),
        }
    }

    fn endpoint(&self) -> String {
        let base = self.base_url.trim_end_matches('/');
        if base.ends_with("/v1") {
            format!("{base}/embeddings")
        } else {
            format!("{base}/v1/embeddings")
        }
    }
}

/// Errors setting the judge up. Messages are lowercase fragments.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The cache could not be opened.
    #[error("open the embeddings cache {}: {source}", path.display())]
    Cache {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The HTTP client could not be built.
    #[error("set up the embeddings client: {0}")]
    Client(String),
}

/// The judge; make one per insert (its call budget is its own).
pub struct EmbeddingJudge {
    config: EmbeddingsConfig,
    client: reqwest::blocking::Client,
    cache: Connection,
    calls: Cell<usize>,
    memo: RefCell<HashMap<String, Vec<f32>>>,
    failed: Cell<bool>,
}

fn key(model: &str, text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in model.bytes().chain([0u8]).chain(text.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

impl EmbeddingJudge {
    /// Opens the cache (creating it) and builds the client.
    pub fn new(config: EmbeddingsConfig) -> Result<EmbeddingJudge, EmbedError> {
        let cache_err = |source| EmbedError::Cache {
            path: config.cache.clone(),
            source,
        };
        if let Some(dir) = config.cache.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| EmbedError::Cache {
                path: config.cache.clone(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
        let cache = Connection::open(&config.cache).map_err(cache_err)?;
        cache
            .busy_timeout(Duration::from_secs(10))
            .map_err(cache_err)?;
        cache
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS embeddings (
                     model  TEXT NOT NULL,
                     key    TEXT NOT NULL,
                     text   TEXT NOT NULL,
                     vector BLOB NOT NULL,
                     PRIMARY KEY (model, key)
                 ) WITHOUT ROWID;",
            )
            .map_err(cache_err)?;
        let client = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| EmbedError::Client(e.to_string()))?;
        Ok(EmbeddingJudge {
            config,
            client,
            cache,
            calls: Cell::new(0),
            memo: RefCell::new(HashMap::new()),
            failed: Cell::new(false),
        })
    }

    /// HTTP requests made so far.
    pub fn calls(&self) -> usize {
        self.calls.get()
    }

    fn cached(&self, text: &str) -> Option<Vec<f32>> {
        let k = key(&self.config.model, text);
        if let Some(v) = self.memo.borrow().get(&k) {
            return Some(v.clone());
        }
        let row: Option<(String, Vec<u8>)> = self
            .cache
            .query_row(
                "SELECT text, vector FROM embeddings WHERE model = ?1 AND key = ?2",
                params![self.config.model, k],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .ok()
            .flatten();
        // The key is a hash: the text itself confirms the entry.
        let (_, bytes) = row.filter(|(t, _)| t == text)?;
        let v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        self.memo.borrow_mut().insert(k, v.clone());
        Some(v)
    }

    fn store(&self, text: &str, v: &[f32]) {
        let k = key(&self.config.model, text);
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        // A cache that cannot be written only costs a later request.
        let _ = self.cache.execute(
            "INSERT OR REPLACE INTO embeddings(model, key, text, vector) VALUES (?1, ?2, ?3, ?4)",
            params![self.config.model, k, text, bytes],
        );
        self.memo.borrow_mut().insert(k, v.to_vec());
    }

    /// Embeds `texts` (redacted), from the cache where it can; `None` when over budget or
    /// the server fails.
    fn vectors(&self, texts: &[&str]) -> Option<Vec<Vec<f32>>> {
        let redactor = crate::redact::Redactor::get();
        let texts: Vec<String> = texts.iter().map(|t| redactor.redact(t).text).collect();
        let missing: Vec<&String> = texts.iter().filter(|t| self.cached(t).is_none()).collect();
        if !missing.is_empty() {
            if self.failed.get() || self.calls.get() >= self.config.max_calls {
                return None;
            }
            self.calls.set(self.calls.get() + 1);
            let mut request = self
                .client
                .post(self.config.endpoint())
                .json(&json!({"model": self.config.model, "input": missing}));
            if let Some(token) = &self.config.api_key {
                request = request.bearer_auth(token);
            }
            let body: Value = match request.send().and_then(|r| r.error_for_status()) {
                Ok(r) => r.json().ok()?,
                Err(_) => {
                    self.failed.set(true);
                    return None;
                }
            };
            let data = body.get("data")?.as_array()?;
            if data.len() != missing.len() {
                return None;
            }
            for (k, item) in data.iter().enumerate() {
                let index = item
                    .get("index")
                    .and_then(Value::as_u64)
                    .map_or(k, |i| i as usize);
                let v: Vec<f32> = item
                    .get("embedding")?
                    .as_array()?
                    .iter()
                    .map(|x| x.as_f64().map(|f| f as f32))
                    .collect::<Option<_>>()?;
                self.store(missing.get(index)?, &v);
            }
        }
        texts.iter().map(|t| self.cached(t)).collect()
    }

    /// The cosine similarity of two texts' embeddings; `None` when they cannot be had.
    pub fn similarity(&self, a: &str, b: &str) -> Option<f64> {
        let v = self.vectors(&[a, b])?;
        Some(cosine(&v[0], &v[1]))
    }
}

impl Judge for EmbeddingJudge {
    fn same_rule(&self, a: &str, b: &str) -> Option<bool> {
        self.similarity(a, b).map(|c| c >= self.config.same_cosine)
    }
}
