//! `promptloop rules …`: the rule store from the command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::{EXIT_FAILED, Failure, finish, load_settings, project_dir};
use crate::learn::curate::{CurateError, Curator, SyncReport, Target};
use crate::settings::{self, Settings};
use crate::store::render;
use crate::store::{
    FileChange, LearnOutcome, NewRule, Provenance, RuleEdit, RuleFilter, RuleStore, Scope,
    SqliteStore, Status, StoreError, StoredRule,
};

const RULES_HELP: &str = "\
Rules live in a store (SQLite): the project's at .promptloop/promptloop.db, global ones at
$XDG_DATA_HOME/promptloop/promptloop.db (--global). Instruction files are rendered from it,
within each file's budget (rules.budget). IDs may be shortened to any unique prefix (7f3a).

Examples:
  promptloop rules list                     # active and proposed rules
  promptloop rules list --status retired --json
  promptloop rules show r-7f3a2c
  promptloop rules approve r-7f3a2c         # a proposed rule (review mode) goes live
  promptloop rules edit r-7f3a2c --rule \"Return None, not 0, from safe_* helpers\"
  promptloop rules export --format json -o rules.json
  promptloop rules import rules.json        # duplicates merge into existing rules
  promptloop rules render                   # re-render every file from the store
  promptloop rules dedup                    # merges and conflicts among stored rules (dry run)
  promptloop rules dedup --apply            # apply them (`rules undo` takes them back)
  promptloop rules log                      # what changed each file, and when
  promptloop rules undo --file CLAUDE.md    # revert the last change to a file
  promptloop rules validate r-7f3a2c        # rerun its failure with and without it
  promptloop rules validate --all --budget 30";

/// `promptloop rules` subcommands.
#[derive(Debug, Subcommand)]
#[command(after_help = RULES_HELP)]
pub enum RulesCommand {
    /// List rules (active and proposed unless --status says otherwise).
    List(ListArgs),
    /// Show one rule with its evidence and provenance.
    Show(IdArgs),
    /// Make a proposed (or retired) rule active and render it into its files.
    Approve(IdArgs),
    /// Reject a proposed rule: it is retired with the reason, and never written.
    Reject(ReasonArgs),
    /// Retire a rule: it leaves every file but stays in the store with its history.
    Retire(ReasonArgs),
    /// Change a rule's text, category or target files, then render.
    Edit(EditArgs),
    /// Write rules as markdown or JSON, to move them to another machine or team.
    Export(ExportArgs),
    /// Read rules exported by `rules export` (or any markdown with Rule/When/Why entries).
    Import(ImportArgs),
    /// Re-render every target file from the store (a second run changes nothing).
    Render(StoreArgs),
    /// Find rules already stored that say the same thing or contradict each other; merge
    /// them and hold conflicts for review with --apply (`rules undo` takes it back).
    Dedup(DedupArgs),
    /// What changed each file, when and why.
    Log(LogArgs),
    /// Revert the last change to a file (its rule change too).
    Undo(UndoArgs),
    /// Rerun a rule's originating failure with and without it; record whether it helps
    /// (a harmful rule is retired).
    Validate(super::validate::ValidateArgs),
}

/// Which store, and how to print.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The project.
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// The config file (for rules.file and rules.budget).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Use the user's store of global rules instead of the project's.
    #[arg(long)]
    global: bool,
    /// Print JSON, for scripts.
    #[arg(long)]
    json: bool,
}

/// `rules list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Only these statuses: proposed, active, retired, all.
    #[arg(long, value_name = "STATUS")]
    status: Vec<String>,
    /// Only rules rendered into this file.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Only rules of this scope: project, team (a team store's rules for every project),
    /// global.
    #[arg(long, value_name = "SCOPE")]
    scope: Option<String>,
}

/// A rule id.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The rule's id (or a unique prefix).
    id: String,
    #[command(flatten)]
    store: StoreArgs,
}

/// A rule id and why.
#[derive(Debug, Args)]
pub struct ReasonArgs {
    /// The rule's id (or a unique prefix).
    id: String,
    /// Why (kept as the rule's note).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// `rules edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// The rule's id (or a unique prefix).
    id: String,
    /// New rule text.
    #[arg(long, value_name = "TEXT")]
    rule: Option<String>,
    /// New "when".
    #[arg(long, value_name = "TEXT")]
    when: Option<String>,
    /// New "why".
    #[arg(long, value_name = "TEXT")]
    why: Option<String>,
    /// New category ("" removes it).
    #[arg(long, value_name = "TEXT")]
    category: Option<String>,
    /// The files it is rendered into (repeat for several); replaces the current list.
    #[arg(long = "target", value_name = "FILE")]
    targets: Vec<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
}

/// Export and import formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Rule / When / Why entries, readable and pasteable.
    Markdown,
    /// Every field, counters and provenance included.
    Json,
}

/// `rules export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// markdown or json.
    #[arg(long, value_enum, default_value = "markdown")]
    format: Format,
    /// Write to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Statuses to export (default: active).
    #[arg(long, value_name = "STATUS")]
    status: Vec<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// `rules import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file (`-` for standard input).
    file: PathBuf,
    /// markdown or json (default: from the content).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Import as proposed, for review, instead of active.
    #[arg(long)]
    review: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// `rules dedup`.
#[derive(Debug, Args)]
pub struct DedupArgs {
    /// Only show what would change (the default).
    #[arg(long, conflicts_with = "apply")]
    dry_run: bool,
    /// Merge the duplicates and hold the conflicts for review.
    #[arg(long)]
    apply: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// `rules log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only this file.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// How many entries.
    #[arg(short = 'n', long, default_value_t = 20)]
    limit: usize,
    /// Show each change's before and after bodies.
    #[arg(long)]
    bodies: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// `rules undo`.
#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The file (default: the configured rules file).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
}

/// Runs a `rules` subcommand.
pub fn main(command: RulesCommand) -> ExitCode {
    finish(match command {
        RulesCommand::List(a) => list(a),
        RulesCommand::Show(a) => show(a),
        RulesCommand::Approve(a) => status(a.store, &a.id, Decision::Approve),
        RulesCommand::Reject(a) => status(a.store, &a.id, Decision::Reject(a.reason)),
        RulesCommand::Retire(a) => status(a.store, &a.id, Decision::Retire(a.reason)),
        RulesCommand::Edit(a) => edit(a),
        RulesCommand::Export(a) => export(a),
        RulesCommand::Import(a) => import(a),
        RulesCommand::Render(a) => render_all(a),
        RulesCommand::Dedup(a) => dedup(a),
        RulesCommand::Log(a) => log(a),
        RulesCommand::Undo(a) => undo(a),
        RulesCommand::Validate(a) => return super::validate::main(a),
    })
}

/// An open store with what the curator needs.
struct Opened {
    /// The project's SQLite file (or the user's), or a team store on a server.
    store: Box<dyn RuleStore>,
    project_dir: PathBuf,
    settings: Settings,
    json: bool,
    global: bool,
}

impl Opened {
    fn open(args: &StoreArgs) -> Result<Opened, Failure> {
        let project_dir = project_dir(&args.project_dir)?;
        let settings = load_settings(args.config.as_deref())?.settings;
        let store = if args.global {
            let path = crate::store::user_db_path(&settings::process_env).ok_or_else(|| {
                Failure::usage("find the user's store: neither XDG_DATA_HOME nor HOME is set")
            })?;
            SqliteStore::open(&path).map(|s| Box::new(s) as Box<dyn RuleStore>)
        } else {
            match crate::store::StoreChoice::of(
                &project_dir,
                &settings.store,
                &settings::process_env,
            ) {
                crate::store::StoreChoice::Sqlite => {
                    // Keep the store out of git, like `run` does.
                    if let Ok(repo) = crate::git::Repo::open(&project_dir) {
                        let _ = repo.ensure_excluded(&format!("{}/", crate::store::DIR_NAME));
                    }
                    crate::store::open_project(&project_dir)
                        .map(|s| Box::new(s) as Box<dyn RuleStore>)
                }
                crate::store::StoreChoice::Postgres { url, project } => {
                    // What was learned offline goes first, so a render's fold of the
                    // offline-written section finds those rules instead of taking them
                    // for hand edits.
                    crate::store::postgres::PgStore::connect(&url, &project, &settings::process_env)
                        .and_then(|s| {
                            crate::store::send_queue(&project_dir, &s)?;
                            Ok(Box::new(s) as Box<dyn RuleStore>)
                        })
                }
            }
        }
        .map_err(store_failure)?;
        Ok(Opened {
            store,
            project_dir,
            settings,
            json: args.json,
            global: args.global,
        })
    }

    fn curator(&self) -> Curator<'_> {
        Curator::for_settings(self.store(), self.project_dir.clone(), &self.settings.rules)
    }

    /// The store, whichever it is.
    fn store(&self) -> &dyn RuleStore {
        self.store.as_ref()
    }

    /// The configured rules file: rules.file, else CLAUDE.md in the project (or, for the
    /// user's store, in `~/.claude/`).
    fn default_target(&self) -> Target {
        let home = settings::process_env("HOME").filter(|h| !h.is_empty());
        let file = match (&self.settings.rules.file, self.global, home) {
            (Some(file), _, _) => file.clone(),
            (None, true, Some(home)) => Path::new(&home).join(".claude/CLAUDE.md"),
            (None, _, _) => PathBuf::from("CLAUDE.md"),
        };
        self.curator().target(&file)
    }
}

pub(super) fn store_failure(e: StoreError) -> Failure {
    let code = match e {
        StoreError::NotFound(_) | StoreError::Ambiguous(..) | StoreError::Invalid(_) => {
            super::EXIT_USAGE
        }
        _ => EXIT_FAILED,
    };
    let message = match &e {
        StoreError::Unreachable(_) => format!(
            "{e}\nthe rules commands work on the team store itself; the instruction files keep \
             the rules rendered before (`promptloop run` works offline and `promptloop store \
             sync` sends what it learned)"
        ),
        _ => e.to_string(),
    };
    Failure { message, code }
}

pub(super) fn curate_failure(e: CurateError) -> Failure {
    match e {
        CurateError::Store(e) => store_failure(e),
        other => Failure {
            message: format!("{other:#}"),
            code: EXIT_FAILED,
        },
    }
}

fn statuses(given: &[String], default: &[Status]) -> Result<Vec<Status>, Failure> {
    if given.is_empty() {
        return Ok(default.to_vec());
    }
    let mut out = Vec::new();
    for s in given.iter().flat_map(|s| s.split(',')) {
        match s.trim() {
            "all" => return Ok(Vec::new()),
            other => out.push(Status::parse(other).ok_or_else(|| {
                Failure::usage(format!(
                    "--status: unknown value {other:?}, expected one of: proposed, active, retired, all"
                ))
            })?),
        }
    }
    Ok(out)
}

fn print_json(value: &impl serde::Serialize) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

fn list(args: ListArgs) -> Result<u8, Failure> {
    let opened = Opened::open(&args.store)?;
    let filter = RuleFilter {
        statuses: statuses(&args.status, &[Status::Active, Status::Proposed])?,
        target: args.file.as_ref().map(|f| opened.curator().target(f).key),
    };
    let scope = match args.scope.as_deref() {
        None => None,
        Some(given) => Some(Scope::parse(given.trim()).ok_or_else(|| {
            Failure::usage(format!(
                "--scope: unknown value {given:?}, expected one of: project, team, global"
            ))
        })?),
    };
    let mut rules = opened.store().list(&filter).map_err(store_failure)?;
    if let Some(scope) = scope {
        rules.retain(|r| r.scope == scope);
    }
    if opened.json {
        print_json(&rules);
        return Ok(0);
    }
    if rules.is_empty() {
        println!("no rules (promptloop run learns them; `--status all` shows retired ones)");
        return Ok(0);
    }
    println!("ID        STATUS    LEARNED VALID RECUR  RULE");
    for r in &rules {
        println!(
            "{:<9} {:<9} {:>7} {:>5} {:>5}  {}",
            r.id,
            r.status,
            r.times_learned,
            r.times_validated,
            r.recurrences,
            short(&r.rule.rule, 70)
        );
    }
    Ok(0)
}

fn show(args: IdArgs) -> Result<u8, Failure> {
    let opened = Opened::open(&args.store)?;
    let rule = opened.store().get(&args.id).map_err(store_failure)?;
    let validations = opened
        .store()
        .validations(Some(&rule.id))
        .map_err(store_failure)?;
    if opened.json {
        let mut value = serde_json::to_value(&rule).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "validations".into(),
                serde_json::to_value(&validations).unwrap_or_default(),
            );
        }
        print_json(&value);
        return Ok(0);
    }
    print!("{}", describe(&rule));
    // The newest first: the verdict the files are rendered by.
    for v in validations.iter().rev() {
        println!("  validation: {} ({})", v.summary(), v.at);
    }
    Ok(0)
}

fn describe(r: &StoredRule) -> String {
    let mut s = format!("{}  {} ({} scope)\n", r.id, r.status, r.scope.as_str());
    if let Some(c) = &r.rule.category {
        s.push_str(&format!("  category: {c}\n"));
    }
    s.push_str(&format!(
        "  rule:     {}\n  when:     {}\n  why:      {}\n",
        r.rule.rule, r.rule.when, r.rule.why
    ));
    if let Some(note) = &r.note {
        s.push_str(&format!("  note:     {note}\n"));
    }
    s.push_str(&format!("  targets:  {}\n", r.targets.join(", ")));
    s.push_str(&format!(
        "  evidence: learned {}×, validated {}× (a run passed after learning it), recurred {}× while active\n",
        r.times_learned, r.times_validated, r.recurrences
    ));
    s.push_str(&format!(
        "  created {}, last learned {}, updated {}\n",
        r.created_at, r.last_learned_at, r.updated_at
    ));
    s.push_str("  provenance:\n");
    for p in &r.provenance {
        let mut parts = vec![
            p.learned_at.clone(),
            p.failure_type.clone(),
            p.source.clone(),
        ];
        if let Some(f) = &p.failure_id {
            parts.push(format!("failure {f}"));
        }
        if let Some(t) = &p.teacher {
            parts.push(format!("teacher {t}"));
        }
        if let Some(m) = &p.model {
            parts.push(format!("model {m}"));
        }
        s.push_str(&format!(
            "    - {}\n      \"{}\"\n",
            parts.join(" · "),
            p.text
        ));
        if let Some(task) = &p.task {
            s.push_str(&format!("      task: {}\n", short(task, 100)));
        }
    }
    s
}

fn report_files(files: &[SyncReport]) {
    for f in files {
        for line in &f.folded {
            println!("  folded: {line}");
        }
        if f.foreign_lines > 0 {
            eprintln!(
                "note: {} line(s) of text in the managed section of {} are not rules promptloop \
                 can read (a rule needs Rule, When and Why); they stay in the file as they are, \
                 above the rendered rules",
                f.foreign_lines, f.target
            );
        }
        let state = if f.written { "written" } else { "unchanged" };
        let hidden = if f.hidden > 0 {
            format!(", {} more kept in the store (budget)", f.hidden)
        } else {
            String::new()
        };
        println!(
            "  {}: {state}, {} rule(s) shown{hidden}",
            f.target,
            f.shown.len()
        );
        if f.over_budget {
            eprintln!(
                "warning: {} is over its budget: the text outside the managed section nearly \
                 fills it (rules.budget)",
                f.target
            );
        }
    }
}

/// A person's decision about a rule: from `rules approve|reject|retire` or the page.
pub(super) enum Decision {
    /// Make it active.
    Approve,
    /// Retire a proposed rule, with why.
    Reject(Option<String>),
    /// Retire a rule, with why.
    Retire(Option<String>),
}

impl Decision {
    /// The past tense, for messages and the file log.
    pub(super) fn verb(&self) -> &'static str {
        match self {
            Decision::Approve => "approved",
            Decision::Reject(_) => "rejected",
            Decision::Retire(_) => "retired",
        }
    }
}

/// Applies `decision` to the rule `id` and renders every file that shows it (its own
/// targets too, even if nothing rendered them yet). Returns the rule as it was, the change
/// and what each file did.
pub(super) fn decide(
    curator: &Curator<'_>,
    id: &str,
    decision: &Decision,
) -> Result<(StoredRule, crate::store::StoreChange, Vec<SyncReport>), Failure> {
    let verb = decision.verb();
    let (to, note) = match decision {
        Decision::Approve => (Status::Active, None),
        Decision::Reject(reason) => (
            Status::Retired,
            Some(format!(
                "rejected: {}",
                reason.as_deref().unwrap_or("by review")
            )),
        ),
        Decision::Retire(reason) => (
            Status::Retired,
            Some(format!(
                "retired: {}",
                reason.as_deref().unwrap_or("by hand")
            )),
        ),
    };
    let before = curator.store.get(id).map_err(store_failure)?;
    if matches!(decision, Decision::Reject(_)) && before.status != Status::Proposed {
        return Err(Failure::usage(format!(
            "reject {}: it is {}, not proposed; use `promptloop rules retire {}`",
            before.id, before.status, before.id
        )));
    }
    let (change, mut files) = curator
        .set_status(&before.id, to, note.as_deref(), verb)
        .map_err(curate_failure)?;
    for t in &before.targets {
        if !files.iter().any(|f| &f.target == t) {
            let target = curator.target(Path::new(t));
            files.push(
                curator
                    .sync(
                        &target,
                        &format!("{verb} {}", change.rule_id),
                        std::slice::from_ref(&change),
                    )
                    .map_err(curate_failure)?,
            );
        }
    }
    Ok((before, change, files))
}

fn status(store_args: StoreArgs, id: &str, decision: Decision) -> Result<u8, Failure> {
    let opened = Opened::open(&store_args)?;
    let (before, change, files) = decide(&opened.curator(), id, &decision)?;
    if opened.json {
        print_json(&serde_json::json!({"change": change, "files": files}));
    } else {
        println!(
            "{} {} ({} → {})",
            decision.verb(),
            change.rule_id,
            before.status,
            change.status_after
        );
        report_files(&files);
    }
    Ok(0)
}

fn edit(args: EditArgs) -> Result<u8, Failure> {
    let opened = Opened::open(&args.store)?;
    let curator = opened.curator();
    let edit = RuleEdit {
        category: args.category.clone(),
        rule: args.rule.clone(),
        when: args.when.clone(),
        why: args.why.clone(),
        targets: (!args.targets.is_empty())
            .then(|| args.targets.iter().map(|t| curator.target(t).key).collect()),
    };
    if edit.category.is_none()
        && edit.rule.is_none()
        && edit.when.is_none()
        && edit.why.is_none()
        && edit.targets.is_none()
    {
        return Err(Failure::usage(
            "edit: say what to change with --rule, --when, --why, --category or --target",
        ));
    }
    let (change, files) = curator.edit(&args.id, &edit).map_err(curate_failure)?;
    if opened.json {
        print_json(&serde_json::json!({"change": change, "files": files}));
    } else {
        println!("edited {}", change.rule_id);
        report_files(&files);
    }
    Ok(0)
}

/// The JSON export's shape.
#[derive(serde::Serialize, serde::Deserialize)]
struct Exported {
    /// Format version.
    promptloop_rules: u32,
    rules: Vec<StoredRule>,
}

fn export(args: ExportArgs) -> Result<u8, Failure> {
    let opened = Opened::open(&args.store)?;
    let rules = opened
        .store()
        .list(&RuleFilter {
            statuses: statuses(&args.status, &[Status::Active])?,
            target: None,
        })
        .map_err(store_failure)?;
    let text = match args.format {
        Format::Json => {
            serde_json::to_string_pretty(&Exported {
                promptloop_rules: 1,
                rules,
            })
            .map_err(|e| Failure::usage(format!("encode the export: {e}")))?
                + "\n"
        }
        Format::Markdown => {
            let mut out = format!(
                "# Rules exported by promptloop\n\n<!-- {} rule(s); `promptloop rules import FILE` reads this back -->\n",
                rules.len()
            );
            let mut last_category: Option<String> = None;
            for r in &rules {
                out.push('\n');
                if r.rule.category.is_some() && r.rule.category != last_category {
                    out.push_str(&format!(
                        "### {}\n",
                        r.rule.category.as_deref().unwrap_or_default()
                    ));
                }
                last_category = r.rule.category.clone();
                out.push_str(&render::entry(r));
            }
            out
        }
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text)
                .map_err(|e| Failure::usage(format!("write {}: {e}", path.display())))?;
            if !opened.json {
                eprintln!("exported to {}", path.display());
            }
        }
        None => print!("{text}"),
    }
    Ok(0)
}

fn import(args: ImportArgs) -> Result<u8, Failure> {
    let opened = Opened::open(&args.store)?;
    let text = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| Failure::usage(format!("read standard input: {e}")))?;
        s
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|e| Failure::usage(format!("read {}: {e}", args.file.display())))?
    };
    let format = args
        .format
        .unwrap_or(if text.trim_start().starts_with('{') {
            Format::Json
        } else {
            Format::Markdown
        });
    let default_target = opened.default_target();
    let mut incoming: Vec<(crate::rules::format::Rule, Vec<String>)> = Vec::new();
    match format {
        Format::Json => {
            let exported: Exported = serde_json::from_str(&text).map_err(|e| {
                Failure::usage(format!(
                    "read {} as a rules export: {e}",
                    args.file.display()
                ))
            })?;
            for r in exported.rules {
                incoming.push((r.rule, r.targets));
            }
        }
        Format::Markdown => {
            for e in render::parse_body(&text).entries {
                incoming.push((e.rule, Vec::new()));
            }
        }
    }
    if incoming.is_empty() {
        return Err(Failure::usage(format!(
            "import {}: it holds no rules (Rule / When / Why entries)",
            args.file.display()
        )));
    }
    let curator = opened.curator();
    let source = format!("import of {}", args.file.display());
    let mut outcomes = Vec::new();
    let mut changes = Vec::new();
    for (rule, targets) in incoming {
        let targets = if targets.is_empty() {
            vec![default_target.key.clone()]
        } else {
            targets
        };
        let outcome = opened
            .store()
            .learn(
                NewRule {
                    rule,
                    scope: if args.store.global {
                        Scope::Global
                    } else {
                        Scope::Project
                    },
                    targets,
                    provenance: Provenance {
                        failure_type: "import".into(),
                        source: source.clone(),
                        learned_at: crate::store::now(),
                        ..Provenance::default()
                    },
                    status: if args.review || opened.settings.rules.review {
                        Status::Proposed
                    } else {
                        Status::Active
                    },
                },
                None,
            )
            .map_err(store_failure)?;
        if let LearnOutcome::Added { id, status } = &outcome {
            changes.push(crate::store::StoreChange {
                rule_id: id.clone(),
                status_before: None,
                status_after: *status,
                text_before: None,
                merged: None,
            });
        }
        outcomes.push(outcome);
    }
    let files = curator
        .sync_all(&source, &changes)
        .map_err(curate_failure)?;
    if opened.json {
        print_json(&serde_json::json!({"outcomes": outcomes, "files": files}));
    } else {
        let count = |f: fn(&LearnOutcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
        println!(
            "imported {} rule(s): {} added, {} merged into existing rules, {} flagged as conflicts",
            outcomes.len(),
            count(|o| matches!(o, LearnOutcome::Added { .. })),
            count(|o| matches!(o, LearnOutcome::Merged { .. })),
            count(|o| matches!(o, LearnOutcome::Conflict { .. })),
        );
        report_files(&files);
    }
    Ok(0)
}

fn render_all(args: StoreArgs) -> Result<u8, Failure> {
    let opened = Opened::open(&args)?;
    let curator = opened.curator();
    let mut files = curator.sync_all("render", &[]).map_err(curate_failure)?;
    let default = opened.default_target();
    if !args.global && !files.iter().any(|f| f.target == default.key) {
        files.push(
            curator
                .sync(&default, "render", &[])
                .map_err(curate_failure)?,
        );
    }
    if opened.json {
        print_json(&files);
    } else {
        report_files(&files);
    }
    Ok(0)
}

fn dedup(args: DedupArgs) -> Result<u8, Failure> {
    let opened = Opened::open(&args.store)?;
    let plan = crate::store::dedup::scan::plan(opened.store()).map_err(store_failure)?;
    let apply = args.apply && !args.dry_run;
    let mut files = Vec::new();
    let mut undoable = true;
    if apply && !(plan.merges.is_empty() && plan.conflicts.is_empty()) {
        let changes =
            crate::store::dedup::scan::apply(opened.store(), &plan).map_err(store_failure)?;
        let curator = opened.curator();
        let reason = format!(
            "dedup: merged {}, held {} for review",
            plan.merges.len(),
            plan.conflicts.len()
        );
        files = curator
            .sync_all(&reason, &changes)
            .map_err(curate_failure)?;
        if !files.iter().any(|f| f.log_seq.is_some()) {
            undoable = curator
                .log_unchanged(&opened.default_target(), &reason, &changes)
                .map_err(curate_failure)?;
        }
    }
    if opened.json {
        print_json(&serde_json::json!({
            "applied": apply,
            "rules": plan.rules,
            "merges": plan.merges,
            "conflicts": plan.conflicts,
            "files": files,
        }));
        return Ok(0);
    }
    println!("compared {} rule(s)", plan.rules);
    if plan.merges.is_empty() && plan.conflicts.is_empty() {
        println!("no duplicates or conflicts found");
        return Ok(0);
    }
    if !plan.merges.is_empty() {
        println!("merges ({}):", plan.merges.len());
        for m in &plan.merges {
            println!(
                "  {} ← {} (similarity {:.2})\n      keep:  {}\n      merge: {}",
                m.keep,
                m.absorb,
                m.similarity,
                short(&m.keep_text, 90),
                short(&m.absorb_text, 90)
            );
        }
    }
    if !plan.conflicts.is_empty() {
        println!("conflicts ({}):", plan.conflicts.len());
        for c in &plan.conflicts {
            let why = serde_json::to_value(c.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            println!(
                "  {} contradicts {} ({why})\n      held:  {}\n      keeps: {}",
                c.id,
                c.with,
                short(&c.text, 90),
                short(&c.with_text, 90)
            );
        }
    }
    if apply {
        println!("applied: merged rules are retired into the rule kept, conflicts are proposed");
        report_files(&files);
        if undoable {
            println!("`promptloop rules undo` takes this back");
        } else {
            eprintln!(
                "note: no instruction file shows these rules, so `rules undo` cannot take this back"
            );
        }
    } else {
        println!("dry run: nothing changed; `promptloop rules dedup --apply` applies this");
    }
    Ok(0)
}

fn log(args: LogArgs) -> Result<u8, Failure> {
    let opened = Opened::open(&args.store)?;
    let target = args.file.as_ref().map(|f| opened.curator().target(f).key);
    let changes = opened
        .store()
        .file_changes(target.as_deref(), args.limit)
        .map_err(store_failure)?;
    if opened.json {
        print_json(&changes);
        return Ok(0);
    }
    if changes.is_empty() {
        println!("no changes logged");
    }
    for c in &changes {
        print_change(c, args.bodies);
    }
    Ok(0)
}

fn print_change(c: &FileChange, bodies: bool) {
    let undone = c
        .undone_by
        .map(|s| format!("  (undone by #{s})"))
        .unwrap_or_default();
    println!("#{:<4} {}  {}  {}{undone}", c.seq, c.at, c.target, c.reason);
    let before: Vec<String> = c
        .old_body
        .as_deref()
        .map(|b| {
            render::parse_body(b)
                .entries
                .into_iter()
                .filter_map(|e| e.id)
                .collect()
        })
        .unwrap_or_default();
    let added: Vec<&String> = c.shown.iter().filter(|id| !before.contains(id)).collect();
    let removed: Vec<&String> = before.iter().filter(|id| !c.shown.contains(id)).collect();
    if !added.is_empty() || !removed.is_empty() {
        println!(
            "       shown now: {}; + {:?}; - {:?}",
            c.shown.len(),
            added,
            removed
        );
    }
    if bodies {
        println!("       --- before ---");
        for line in c.old_body.as_deref().unwrap_or("(no section)").lines() {
            println!("       {line}");
        }
        println!("       --- after ---");
        for line in c.new_body.lines() {
            println!("       {line}");
        }
    }
}

fn undo(args: UndoArgs) -> Result<u8, Failure> {
    let opened = Opened::open(&args.store)?;
    let curator = opened.curator();
    let target = match &args.file {
        Some(f) => curator.target(f),
        None => opened.default_target(),
    };
    let (entry, others) = curator.undo(&target).map_err(|e| match e {
        CurateError::Undo { .. } => Failure::usage(e.to_string()),
        other => curate_failure(other),
    })?;
    if opened.json {
        print_json(&serde_json::json!({"undo": entry, "files": others}));
    } else {
        println!("{}: {}", target.key, entry.reason);
        for c in &entry.store_changes {
            println!("  {} is {} again", c.rule_id, c.status_after);
        }
        report_files(&others);
    }
    Ok(0)
}
