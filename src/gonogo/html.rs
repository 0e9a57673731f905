//! The packet as one self-contained HTML page: inline CSS, no script, no external asset, every
//! text HTML-escaped. The evidence is shown as indented JSON under each section.

use std::fmt::Write;

use super::{Packet, Verdict};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;\
padding:0 1rem;color:#222}h1{font-size:1.5rem}section{border:1px solid #ccc;border-radius:6px;\
margin:1rem 0;padding:0 1rem 1rem}.verdict{display:inline-block;padding:.1rem .6rem;\
border-radius:4px;font-weight:bold;color:#fff}.go{background:#1a7f37}.no_go{background:#cf222e}\
pre{background:#f6f8fa;padding:.75rem;overflow-x:auto;font-size:.8rem}\
table{border-collapse:collapse}td,th{text-align:left;padding:.2rem .8rem .2rem 0}";

/// `text` with `& < > " '` escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn badge(verdict: Verdict) -> String {
    format!(r#"<span class="verdict {0}">{0}</span>"#, verdict.as_str())
}

/// The page of `packet`.
pub fn render(packet: &Packet) -> String {
    let mut page = String::new();
    let d = &packet.deployment;
    // Writing to a `String` cannot fail.
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Pactum go/no-go {run}</title><style>{STYLE}</style></head><body>\n\
         <h1>Pactum go/no-go: {badge}</h1>\n<table>\
         <tr><th>Run</th><td>{run}</td></tr>\
         <tr><th>Chain</th><td>{chain}</td></tr>\
         <tr><th>Escrow</th><td>{escrow}</td></tr>\
         <tr><th>Environment</th><td>{env}</td></tr>\
         <tr><th>Version</th><td>{version}</td></tr>\
         <tr><th>Started / finished (unix s)</th><td>{started} / {finished}</td></tr>\
         </table>\n",
        run = escape(&packet.run_id),
        badge = badge(packet.verdict),
        chain = d.chain_id,
        escrow = escape(&d.escrow),
        env = escape(&d.environment),
        version = escape(&d.binary_version),
        started = packet.started_at,
        finished = packet.finished_at,
    );
    for section in &packet.sections {
        let evidence = serde_json::to_string_pretty(&section.evidence).unwrap_or_default();
        let _ = write!(
            page,
            "<section id=\"{id}\"><h2>{title} {badge}</h2><p>{summary}</p>\
             <pre>{evidence}</pre></section>",
            id = section.section.as_str(),
            title = section.section.title(),
            badge = badge(section.verdict),
            summary = escape(&section.summary),
            evidence = escape(&evidence),
        );
        page.push('\n');
    }
    if let Some(signature) = &packet.signature {
        let _ = write!(
            page,
            "<section id=\"signature\"><h2>Signature</h2><table>\
             <tr><th>Signer (receipt key)</th><td>{}</td></tr>\
             <tr><th>Packet hash</th><td>{}</td></tr>\
             <tr><th>Signature</th><td><code>{}</code></td></tr></table>\
             <p>Verify with <code>pactum go-no-go verify packet.json</code> (docs/go-no-go.md).</p>\
             </section>",
            escape(&signature.signer),
            escape(&signature.packet_hash),
            escape(&signature.signature),
        );
        page.push('\n');
    }
    page.push_str("</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gonogo::{Deployment, Section, SectionReport};

    #[test]
    fn every_section_appears_and_nothing_is_left_unescaped() {
        let sections = Section::ALL
            .iter()
            .map(|s| {
                SectionReport::new(
                    *s,
                    Verdict::Go,
                    "<script>alert(1)</script>",
                    &serde_json::json!({ "x": "</pre><img src=x>" }),
                )
            })
            .collect();
        let deployment = Deployment {
            chain_id: 1,
            escrow: "0x".into(),
            environment: "test".into(),
            binary_version: "0".into(),
        };
        let page = render(&Packet::new("gng_<b>".into(), deployment, 0, 0, sections));
        for section in Section::ALL {
            assert!(page.contains(&format!("id=\"{}\"", section.as_str())));
            assert!(page.contains(section.title()));
        }
        assert!(!page.contains("<script>") && !page.contains("<img") && !page.contains("<b>"));
        assert!(!page.contains("http://") && !page.contains("https://"), "no external asset");
    }
}
