//! tantivy on the first million lines of the log benchmark's plain file: once with its
//! default (word) tokenizer, once with 4-gram tokens (what substring, case-insensitive
//! search like `grep -i` needs). Prints ingest rate, index size and query times.

use std::io::BufRead;
use std::time::Instant;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::QueryParser;
use tantivy::schema::{IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{LowerCaser, NgramTokenizer, TextAnalyzer};
use tantivy::{Index, IndexWriter, TantivyDocument, doc};

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path).map_or(0, |d| d.flatten().map(|e| e.metadata().map_or(0, |m| m.len())).sum())
}

fn main() -> tantivy::Result<()> {
    let file = std::env::args().nth(1).unwrap_or_else(|| "/tmp/gatewarden-bench-logs.txt".into());
    let lines: Vec<String> = std::io::BufReader::new(std::fs::File::open(&file)?)
        .lines()
        .take(1_000_000)
        .collect::<Result<_, _>>()?;
    let text: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
    let needle = lines[370_000].split("req_id=").nth(1).unwrap_or("").to_string();
    println!("{} lines, {:.0} MB of text", lines.len(), text as f64 / 1e6);
    for tokenizer in ["default", "ngram4"] {
        let dir = std::path::PathBuf::from(format!("/tmp/gatewarden-tantivy-{tokenizer}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut schema = Schema::builder();
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let message = schema.add_text_field("message", TextOptions::default().set_indexing_options(indexing) | STORED);
        let index = Index::create_in_dir(&dir, schema.build())?;
        index.tokenizers().register(
            "ngram4",
            TextAnalyzer::builder(NgramTokenizer::new(4, 4, false)?).filter(LowerCaser).build(),
        );
        let started = Instant::now();
        let mut writer: IndexWriter = index.writer(400_000_000)?;
        for l in &lines {
            writer.add_document(doc!(message => l.as_str()))?;
        }
        writer.commit()?;
        writer.wait_merging_threads()?;
        let took = started.elapsed();
        let size = dir_size(&dir);
        println!(
            "\ntantivy, {tokenizer} tokenizer: ingest {:.0} lines/s, index {:.0} MB ({:.2}x the text, stored text included)",
            lines.len() as f64 / took.as_secs_f64(),
            size as f64 / 1e6,
            size as f64 / text as f64
        );
        let reader = index.reader()?;
        let searcher = reader.searcher();
        let parser = QueryParser::for_index(&index, vec![message]);
        for q in ["\"upstream timed out\"", &format!("\"{needle}\""), "error OR exception OR failed", "refus"] {
            let query = parser.parse_query(q)?;
            let mut times = Vec::new();
            let mut count = 0;
            for _ in 0..5 {
                let t = Instant::now();
                let (n, top) = searcher.search(&query, &(Count, TopDocs::with_limit(100)))?;
                for (_, address) in &top {
                    let _: TantivyDocument = searcher.doc(*address)?;
                }
                times.push(t.elapsed());
                count = n;
            }
            times.sort();
            println!("  {q}: {count} matches, p50 {:.1} ms", times[2].as_secs_f64() * 1000.0);
        }
    }
    Ok(())
}
