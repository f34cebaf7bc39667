//! Contexts: `context NAME (cores: [..])`, `.context(NAME)` and `.emit(context: NAME, ...)`,
//! what the plan holds, and the errors for placements that cannot run.

use crate::{error, errors, plan};

const PIPELINE: &str = "\
event Reading: zone: str, v: int
context ingest
context analyze (cores: [1, 0])
stream Clean = Reading .where(v >= 0) .context(ingest) .emit(context: analyze, zone, v)
stream Stats = Clean .partition_by(zone) .window(10s) .aggregate(n: count()) .context(analyze)
stream Report = Stats .where(n > 1)";

#[test]
fn contexts_and_placements_are_in_the_plan() {
    let p = plan(PIPELINE);
    let names: Vec<(&str, &[usize])> = p
        .contexts
        .iter()
        .map(|c| (c.name.as_str(), c.cores.as_slice()))
        .collect();
    assert_eq!(names, [("ingest", &[][..]), ("analyze", &[1, 0][..])]);
    let clean = p.stream("Clean").unwrap();
    assert_eq!(clean.context.as_deref(), Some("ingest"));
    assert_eq!(clean.emit_context.as_deref(), Some("analyze"));
    // `context:` is the hand-off, not an output field.
    let fields: Vec<&str> = clean
        .emit
        .as_ref()
        .unwrap()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(fields, ["zone", "v"]);
    assert_eq!(
        p.stream("Stats").unwrap().context.as_deref(),
        Some("analyze")
    );
    assert_eq!(p.stream("Report").unwrap().context, None);
}

#[test]
fn emit_of_only_a_context_hands_the_events_on_unchanged() {
    let p = plan(
        "event R: v: int\ncontext a\ncontext b\nstream S = R .context(a) .emit(context: b)\n\
         stream T = S .where(v > 1) .context(b)",
    );
    let s = p.stream("S").unwrap();
    assert_eq!(
        (s.emit.is_none(), s.emit_context.as_deref()),
        (true, Some("b"))
    );
}

#[test]
fn without_declared_contexts_a_field_named_context_is_a_field() {
    let p = plan("event R: v: int\nstream S = R .emit(context: v)");
    let s = p.stream("S").unwrap();
    assert_eq!(s.emit.as_ref().unwrap()[0].name, "context");
    assert_eq!(s.emit_context, None);
}

#[test]
fn an_unknown_context_is_named_with_a_suggestion() {
    let d = error("event R: v: int\ncontext ingest\nstream S = R .context(ingst)");
    assert_eq!((d.line, d.column), (3, 23));
    assert_eq!(d.message, "unknown context ingst");
    assert_eq!(d.help.as_deref(), Some("did you mean \"ingest\"?"));
    let d = error("event R: v: int\ncontext ingest\nstream S = R .emit(context: other, v)");
    assert_eq!(d.message, "unknown context other");
}

#[test]
fn declarations_are_checked() {
    let e = errors(
        "event R: v: int\ncontext a\ncontext a\ncontext main\ncontext b (cores: [2, 2])\n\
         context c (cores: [99999])",
    );
    let messages: Vec<&str> = e.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(
        messages,
        [
            "context a is declared twice",
            "context main is the name of a run's default context in its checkpoints; choose \
             another name",
            "core 2 is listed twice",
            "core 99999: cores are numbered from 0, below 4096",
        ]
    );
    let d = error("event R: v: int\ncontext a (threads: [1])");
    assert!(d.message.contains("cores:"), "{}", d.message);
}

#[test]
fn a_stream_runs_in_one_context() {
    let d = error("event R: v: int\ncontext a\ncontext b\nstream S = R .context(a) .context(b)");
    assert_eq!(
        d.message,
        "duplicate .context: a stream runs in one context"
    );
}

#[test]
fn a_declared_context_does_not_read_the_default_context() {
    let d =
        error("event R: v: int\ncontext a\nstream S = R .where(v > 1)\nstream T = S .context(a)");
    assert_eq!(
        d.message,
        "stream T runs in context a but reads S, which runs in the default context"
    );
}

#[test]
fn outputs_handed_to_a_context_are_read_there() {
    let d = error(
        "event R: v: int\ncontext a\ncontext b\ncontext c\n\
         stream S = R .context(a) .emit(context: b, v)\nstream T = S .context(c)",
    );
    assert_eq!(
        d.message,
        "stream T (context c) reads S, whose outputs are handed to context b \
         (`.emit(context: b)`)"
    );
    // Its own context and the one it hands to may read it.
    plan(
        "event R: v: int\ncontext a\ncontext b\n\
         stream S = R .context(a) .emit(context: b, v)\nstream T = S .context(b)\n\
         stream U = S .where(v > 1) .context(a)",
    );
}

#[test]
fn contexts_that_read_each_other_in_a_cycle_are_refused() {
    let d = error(
        "event R: v: int\ncontext a\ncontext b\n\
         stream S = R .context(a)\nstream T = S .context(b)\nstream U = T .context(a)",
    );
    assert!(
        d.message
            .starts_with("the contexts read each other in a cycle (a -> b -> a)"),
        "{}",
        d.message
    );
}
