//! `promptloop bench SUITE.yaml`: the suite's tasks in each arm (the project's rules, no
//! rules, a rules file), every trial in its own temporary copy, the pass rates compared.
//! Also home of [`CliLoop`], the one place a trial (bench or `rules validate`) runs the
//! learning loop.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::{
    EXIT_INTERRUPTED, EXIT_USAGE, Failure, agents, finish, load_settings, project_dir, teachers,
};
use crate::bench::{
    self, Arm, LoopInput, LoopRun, Report, Split, Suite, TrialKey, TrialLoop, TrialPlan,
    TrialRecord, TrialResult,
};
use crate::events::Event;
use crate::learning_loop::{self, RunPlan};
use crate::process::CancelToken;
use crate::record::Record;
use crate::settings::{ConfigSource, Loaded, Overrides, Settings};
use crate::store::evidence::{BenchRunRow, BenchTrialRow};
use crate::store::{RuleFilter, RuleStore, SqliteStore, Status};
use crate::teacher::{Lesson, Teacher, TeacherError, TeacherReply};

/// Examples for `promptloop bench --help`.
pub(crate) const AFTER_HELP: &str = "\
Examples:
  promptloop bench examples/bench/suite.yaml                  # the project's rules vs none
  promptloop bench suite.yaml --trials 5 --jobs 4 --json
  promptloop bench suite.yaml --arms rules.json,none          # a rules export as an arm
  promptloop bench suite.yaml --arms team.md,mine.json,none   # compare two rule sets
  promptloop bench suite.yaml --learn                         # learn on `train`, test on `test`
  promptloop bench suite.yaml --resume                        # go on after Ctrl-C

Each trial runs in its own temporary copy of the task's project (the user's work tree is only
read); hidden tests are copied in for the check only. Results are kept in the project's store
(-d), so an interrupted bench keeps its finished trials. docs/bench.md has the suite format,
the JSON schema and how to run a suite against Claude Code, Codex or Gemini.";

/// `promptloop bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The suite file (YAML; see docs/bench.md).
    suite: PathBuf,
    /// The arms, comma-separated: `rules` (the project's current rules), `none` (an empty
    /// rules section), or a rules file (`promptloop rules export`, JSON or markdown).
    #[arg(long, value_delimiter = ',', default_value = "rules,none")]
    arms: Vec<String>,
    /// Repetitions of each task in each arm.
    #[arg(long, default_value_t = 1, value_name = "N")]
    trials: u32,
    /// Trials run at once.
    #[arg(short = 'j', long, default_value_t = 1, value_name = "K")]
    jobs: usize,
    /// First run the loop on the suite's `train` tasks (what it learns joins the `rules`
    /// arm), then evaluate on its `test` tasks.
    #[arg(long)]
    learn: bool,
    /// Go on with an interrupted bench of this suite (or the bench with this id); its
    /// arms, trials and options are the ones it started with.
    #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "")]
    resume: Option<String>,
    /// Retries after a trial's first attempt (overrides learning.max_retries).
    #[arg(short = 'r', long, value_name = "N")]
    max_retries: Option<u32>,
    /// The project whose rules the `rules` arm holds and whose store keeps the results.
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// The config file (agent, teacher, tests.timeout, …); a task's own settings go over it.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The teacher (overrides teacher.mode).
    #[arg(short, long, value_name = "MODE")]
    teacher: Option<String>,
    /// The agent (overrides agent.kind).
    #[arg(long, value_name = "NAME")]
    agent: Option<String>,
    /// Keep each trial's directory (its path is in the trial's message).
    #[arg(long)]
    keep_trials: bool,
    /// Print the report as JSON (schema in docs/bench.md).
    #[arg(long)]
    json: bool,
}

/// Runs the loop for a trial with the real agent and teacher, from a task's settings.
pub(crate) struct CliLoop {
    /// Where the config came from (prompt files are read relative to it).
    pub(crate) source: ConfigSource,
}

/// A teacher that counts the tokens its answers report.
struct Counting<'t> {
    inner: &'t dyn Teacher,
    tokens: Cell<(u64, u64)>,
}

impl Teacher for Counting<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn ask(
        &self,
        lesson: &Lesson,
        failure: &crate::failure::FailureContext,
        follow_up: Option<(&str, &str)>,
        cancel: &CancelToken,
    ) -> Result<TeacherReply, TeacherError> {
        let reply = self.inner.ask(lesson, failure, follow_up, cancel)?;
        let (i, o) = self.tokens.get();
        self.tokens.set((
            i + reply.input_tokens.unwrap_or(0),
            o + reply.output_tokens.unwrap_or(0),
        ));
        Ok(reply)
    }
}

impl TrialLoop for CliLoop {
    fn rules_files(&self, settings: &Settings, project: &Path) -> Vec<PathBuf> {
        let agent = agents::make_agent(settings);
        agents::rules_targets(settings, project, agent.as_ref()).paths()
    }

    fn run(&self, input: &LoopInput<'_>, cancel: &CancelToken) -> Result<LoopRun, String> {
        let settings = input.settings;
        let loaded = Loaded {
            settings: settings.clone(),
            source: self.source.clone(),
            warnings: Vec::new(),
        };
        let teaching = teachers::Teaching::new(&loaded).map_err(|f| f.message)?;
        let agent = agents::make_agent(settings);
        agent.check().map_err(|e| e.to_string())?;
        let teacher = if input.learn {
            teachers::make_teacher(settings).map_err(|f| f.message)?
        } else {
            Err("a rerun learns nothing".to_string())
        };
        let counting = teacher.as_deref().ok().map(|inner| Counting {
            inner,
            tokens: Cell::new((0, 0)),
        });
        let teacher_ref: Result<&dyn Teacher, String> = match (&counting, &teacher) {
            (Some(c), _) => Ok(c as &dyn Teacher),
            (None, Err(why)) => Err(why.clone()),
            (None, Ok(_)) => Err("no teacher".into()),
        };
        let rules = agents::rules_targets(settings, input.project, agent.as_ref());
        let learner = teaching.learner(teacher_ref, rules);
        let repo = crate::git::Repo::open(input.project).map_err(|e| e.to_string())?;
        repo.ensure_excluded(&format!("{}/", crate::store::DIR_NAME))
            .map_err(|e| e.to_string())?;
        let record = Record::open(input.project).map_err(|e| e.to_string())?;
        let plan = RunPlan {
            task: input.task.to_string(),
            project_dir: input.project.to_path_buf(),
            max_attempts: input.max_attempts.max(1),
            auto_retry: true,
            test_command: input.test_command.to_string(),
            framework: super::framework(settings, &settings.tests.command, input.project),
            tests_timeout: settings.tests.timeout,
            test_report: settings.tests.report.clone(),
            semantic: super::semantic_plan(settings),
        };
        let mut events: Vec<Event> = Vec::new();
        let context = learning_loop::RunContext {
            plan: &plan,
            agent: agent.as_ref(),
            learner: &learner,
            repo: &repo,
            record: &record,
            cancel,
        };
        learning_loop::run(context, &mut events).map_err(|e| format!("{e:#}"))?;
        Ok(LoopRun {
            events,
            teacher_tokens: counting.map_or((0, 0), |c| c.tokens.get()),
        })
    }
}

/// Attempts a trial of these settings makes: 1 + retries, like `run`.
pub(crate) fn max_attempts(settings: &Settings) -> u32 {
    1 + if settings.learning.auto_retry {
        settings.learning.max_retries
    } else {
        0
    }
}

/// Runs `promptloop bench`.
pub fn bench(args: BenchArgs) -> ExitCode {
    finish(bench_inner(args))
}

/// The bench's options as kept in the store, so `--resume` runs the same bench.
#[derive(serde::Serialize, serde::Deserialize)]
struct Options {
    arms: Vec<Arm>,
    trials: u32,
    learn: bool,
    /// True once the `--learn` pass is done and its rules are in the arms.
    learned: bool,
    learned_rules: usize,
}

fn bench_inner(args: BenchArgs) -> Result<u8, Failure> {
    if args.trials == 0 {
        return Err(Failure::usage("--trials must be at least 1"));
    }
    let suite = bench::suite::load(&args.suite).map_err(Failure::usage)?;
    let suite_key = suite
        .path
        .canonicalize()
        .unwrap_or_else(|_| suite.path.clone())
        .display()
        .to_string();
    let project_dir = project_dir(&args.project_dir)?;
    let mut loaded = load_settings(args.config.as_deref())?;
    loaded.settings.apply(&Overrides {
        teacher_mode: args.teacher.clone(),
        agent_kind: args.agent.clone(),
        max_retries: args.max_retries,
        ..Overrides::default()
    })?;
    if let Ok(repo) = crate::git::Repo::open(&project_dir) {
        let _ = repo.ensure_excluded(&format!("{}/", crate::store::DIR_NAME));
    }
    let store =
        crate::store::open_project(&project_dir).map_err(|e| Failure::usage(e.to_string()))?;
    let store_err = |e: crate::store::StoreError| Failure {
        message: e.to_string(),
        code: super::EXIT_FAILED,
    };

    if args.learn && !suite.tasks.iter().any(|t| t.split == Split::Train) {
        return Err(Failure::usage(format!(
            "--learn: {} has no task with `split: train` to learn on",
            suite.path.display()
        )));
    }
    if args.learn && !suite.tasks.iter().any(|t| t.split == Split::Test) {
        return Err(Failure::usage(format!(
            "--learn: {} has no `test` task to evaluate on",
            suite.path.display()
        )));
    }

    // A new bench, or the one to go on with.
    let (bench_id, mut options) = match &args.resume {
        Some(id) => {
            let wanted = (!id.is_empty()).then_some(id.as_str());
            let run = store
                .bench_run(wanted, &suite_key)
                .map_err(store_err)?
                .ok_or_else(|| {
                    Failure::usage(match wanted {
                        Some(id) => {
                            format!("--resume: no bench {id} in {}", store.path().display())
                        }
                        None => format!(
                            "--resume: no unfinished bench of {} in {}",
                            suite.path.display(),
                            store.path().display()
                        ),
                    })
                })?;
            if run.suite_hash != suite.hash {
                return Err(Failure::usage(format!(
                    "--resume: {} changed since bench {} started; start a new bench (without --resume)",
                    suite.path.display(),
                    run.id
                )));
            }
            let options: Options = serde_json::from_value(run.options.clone())
                .map_err(|e| Failure::usage(format!("--resume: read bench {}: {e}", run.id)))?;
            (run.id, options)
        }
        None => {
            let arms = make_arms(&args.arms, &store, &project_dir, args.learn)?;
            let id = crate::record::new_id();
            let options = Options {
                arms,
                trials: args.trials,
                learn: args.learn,
                learned: false,
                learned_rules: 0,
            };
            (id, options)
        }
    };
    let is_new = args.resume.is_none();
    // Each task's settings, checked before anything runs (a missing agent fails now).
    let mut task_settings = Vec::new();
    for task in &suite.tasks {
        let s = bench::suite::task_settings(&loaded.settings, task).map_err(Failure::usage)?;
        agents::make_agent(&s)
            .check()
            .map_err(|e| Failure::usage(format!("task {:?}: {e}", task.id)))?;
        if options.learn || max_attempts(&s) > 1 {
            let teacher = teachers::make_teacher(&s)
                .map_err(|f| Failure::usage(format!("task {:?}: {}", task.id, f.message)))?;
            if let Err(why) = teacher {
                if options.learn && task.split == Split::Train {
                    return Err(Failure::usage(format!(
                        "--learn: task {:?} has no teacher to learn from: {why}",
                        task.id
                    )));
                }
                if !args.json {
                    eprintln!(
                        "warning: task {:?}: retries learn nothing without a teacher ({why})",
                        task.id
                    );
                }
            }
        }
        task_settings.push(s);
    }
    if is_new {
        // Only once the bench can run, so a mistake leaves nothing to `--resume`.
        store
            .start_bench(&BenchRunRow {
                id: bench_id.clone(),
                suite: suite_key.clone(),
                suite_hash: suite.hash.clone(),
                started_at: crate::store::now(),
                finished_at: None,
                options: serde_json::to_value(&options).unwrap_or_default(),
            })
            .map_err(store_err)?;
    }
    let runner = CliLoop {
        source: loaded.source.clone(),
    };
    let cancel = CancelToken::new();
    super::install_interrupt(&cancel);

    let done: Vec<TrialRecord> = store
        .bench_trials(&bench_id)
        .map_err(store_err)?
        .into_iter()
        .filter_map(|row| {
            let key = TrialKey {
                phase: if row.phase == "train" {
                    Split::Train
                } else {
                    Split::Test
                },
                task: row.task,
                arm: row.arm,
                trial: row.trial,
            };
            let result: TrialResult = serde_json::from_value(row.data).ok()?;
            Some(TrialRecord { key, result })
        })
        .collect();
    let mut records = done.clone();
    let all = bench::plan_trials(&suite, &options.arms, options.trials, options.learn);
    let todo: Vec<TrialKey> = all
        .iter()
        .filter(|k| !done.iter().any(|d| &d.key == *k))
        .cloned()
        .collect();
    if !args.json {
        let resumed = if done.is_empty() {
            String::new()
        } else {
            format!(", {} trials already done", done.len())
        };
        eprintln!(
            "bench {}: {} task(s) × {} arm(s) × {} trial(s){resumed} (bench {bench_id})",
            suite.name,
            suite
                .tasks
                .iter()
                .filter(|t| !options.learn || t.split == Split::Test)
                .count(),
            options.arms.len(),
            options.trials,
        );
    }
    let bar = progress_bar(!args.json, all.len() as u64, done.len() as u64);
    let mut ran_now = 0u32;
    let mut setup_errors = Vec::new();
    let task_of = |id: &str| suite.tasks.iter().position(|t| t.id == id);

    // The learning pass: one trial per train task, in order, each starting from what the
    // earlier ones learned.
    if options.learn && !options.learned {
        let mut learned: Vec<crate::store::StoredRule> = Vec::new();
        for r in records.iter().filter(|r| r.key.phase == Split::Train) {
            bench::add_learned(&mut learned, &r.result.learned);
        }
        let base = options
            .arms
            .iter()
            .find(|a| a.name == "rules")
            .map(|a| a.rules.clone())
            .unwrap_or_default();
        for key in todo.iter().filter(|k| k.phase == Split::Train) {
            if cancel.is_cancelled() {
                break;
            }
            let Some(i) = task_of(&key.task) else {
                continue;
            };
            let mut rules = base.clone();
            bench::add_learned(&mut rules, &learned);
            let plan = TrialPlan {
                task: &suite.tasks[i],
                settings: &task_settings[i],
                rules: &rules,
                arm: "train",
                max_attempts: max_attempts(&task_settings[i]),
                learn: true,
                keep: args.keep_trials,
            };
            match bench::run_trial(&plan, &runner, &cancel) {
                Ok(result) => {
                    if result.outcome == "interrupted" {
                        continue;
                    }
                    bench::add_learned(&mut learned, &result.learned);
                    keep_trial(&store, &bench_id, key, &result).map_err(store_err)?;
                    trial_done(&bar, key, &result);
                    ran_now += 1;
                    records.push(TrialRecord {
                        key: key.clone(),
                        result,
                    });
                }
                Err(e) => setup_errors.push(e),
            }
        }
        if !cancel.is_cancelled() && setup_errors.is_empty() {
            options.learned_rules = learned.len();
            match options.arms.iter_mut().find(|a| a.name == "rules") {
                Some(arm) => {
                    bench::add_learned(&mut arm.rules, &learned);
                    arm.source = format!("{} + {} learned on train", arm.source, learned.len());
                }
                None => options.arms.insert(
                    0,
                    Arm {
                        name: "learned".into(),
                        source: format!("{} rule(s) learned on the train tasks", learned.len()),
                        rules: learned,
                    },
                ),
            }
            options.learned = true;
            store
                .update_bench_options(
                    &bench_id,
                    &serde_json::to_value(&options).unwrap_or_default(),
                )
                .map_err(store_err)?;
        }
    }

    // The evaluation, in parallel.
    let test_keys: Vec<TrialKey> = if options.learn && !options.learned {
        Vec::new()
    } else {
        bench::plan_trials(&suite, &options.arms, options.trials, options.learn)
            .into_iter()
            .filter(|k| k.phase == Split::Test && !records.iter().any(|r| &r.key == k))
            .collect()
    };
    let arms = &options.arms;
    bench::run_parallel(
        &test_keys,
        args.jobs,
        &cancel,
        |key| {
            let i = task_of(&key.task).ok_or_else(|| format!("no task {}", key.task))?;
            let arm = arms
                .iter()
                .find(|a| a.name == key.arm)
                .ok_or_else(|| format!("no arm {}", key.arm))?;
            let attempts = max_attempts(&task_settings[i]);
            bench::run_trial(
                &TrialPlan {
                    task: &suite.tasks[i],
                    settings: &task_settings[i],
                    rules: &arm.rules,
                    arm: &arm.name,
                    max_attempts: attempts,
                    learn: attempts > 1,
                    keep: args.keep_trials,
                },
                &runner,
                &cancel,
            )
        },
        |key, result| match result {
            Ok(result) if result.outcome == "interrupted" => {}
            Ok(result) => {
                if let Err(e) = keep_trial(&store, &bench_id, key, &result) {
                    setup_errors.push(format!("keep the trial's result: {e}"));
                }
                trial_done(&bar, key, &result);
                ran_now += 1;
                records.push(TrialRecord {
                    key: key.clone(),
                    result,
                });
            }
            Err(e) => {
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
                setup_errors.push(e);
            }
        },
    );
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    for e in &setup_errors {
        eprintln!("warning: a trial could not be set up and was not counted: {e}");
    }
    // Trials in the plan's order, so reports of the same results read the same.
    let order = |k: &TrialKey| all.iter().position(|a| a == k).unwrap_or(usize::MAX);
    records.sort_by_key(|r| order(&r.key));
    let report = bench::report(
        &bench_id,
        &suite,
        &options.arms,
        options.trials,
        records,
        bench::RunFacts {
            learned_rules: options.learned_rules,
            ran_now,
            setup_errors: setup_errors.clone(),
        },
    );
    let interrupted = cancel.is_cancelled();
    let complete = report.trials.len() == all.len();
    if complete && !interrupted {
        store.finish_bench(&bench_id).map_err(store_err)?;
    }
    if args.json {
        let mut out = std::io::stdout().lock();
        let mut value = serde_json::to_value(&report).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("complete".into(), json!(complete));
        }
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        print_report(&report, &suite, store.path());
    }
    if interrupted || !complete {
        eprintln!(
            "{}: {} of {} trials are done; `promptloop bench {} --resume` goes on",
            if interrupted {
                "interrupted"
            } else {
                "not finished"
            },
            report.trials.len(),
            all.len(),
            args.suite.display()
        );
        return Ok(if interrupted {
            EXIT_INTERRUPTED
        } else {
            super::EXIT_FAILED
        });
    }
    Ok(0)
}

/// The arms named on the command line, with their rules as they are now.
fn make_arms(
    names: &[String],
    store: &SqliteStore,
    project_dir: &Path,
    learn: bool,
) -> Result<Vec<Arm>, Failure> {
    let mut arms: Vec<Arm> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let arm = match name {
            "rules" => {
                let rules = store
                    .list(&RuleFilter {
                        statuses: vec![Status::Active],
                        target: None,
                    })
                    .map_err(|e| Failure::usage(e.to_string()))?;
                if rules.is_empty() && !learn {
                    eprintln!(
                        "warning: the `rules` arm is empty: {} has no active rules (-d names the project)",
                        project_dir.display()
                    );
                }
                Arm {
                    name: "rules".into(),
                    source: format!(
                        "the project's rules ({} active in {})",
                        rules.len(),
                        project_dir.display()
                    ),
                    rules,
                }
            }
            "none" => Arm {
                name: "none".into(),
                source: "an empty rules section".into(),
                rules: Vec::new(),
            },
            path => {
                if !Path::new(path).is_file() {
                    return Err(Failure::usage(format!(
                        "--arms: {path:?} is not `rules`, `none` or a rules file"
                    )));
                }
                bench::arm_from_file(Path::new(path)).map_err(Failure::usage)?
            }
        };
        if arms.iter().any(|a| a.name == arm.name) {
            return Err(Failure::usage(format!(
                "--arms: two arms are named {:?}; rename one of the files",
                arm.name
            )));
        }
        arms.push(arm);
    }
    if arms.is_empty() {
        return Err(Failure {
            message: "--arms: name at least one arm (rules, none, or a rules file)".into(),
            code: EXIT_USAGE,
        });
    }
    Ok(arms)
}

fn keep_trial(
    store: &SqliteStore,
    bench_id: &str,
    key: &TrialKey,
    result: &TrialResult,
) -> Result<(), crate::store::StoreError> {
    store.record_bench_trial(
        bench_id,
        &BenchTrialRow {
            phase: key.phase.as_str().into(),
            task: key.task.clone(),
            arm: key.arm.clone(),
            trial: key.trial,
            passed: result.passed,
            outcome: result.outcome.clone(),
            data: serde_json::to_value(result).unwrap_or_default(),
        },
    )
}

fn progress_bar(show: bool, total: u64, done: u64) -> Option<indicatif::ProgressBar> {
    if !show || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} trials  {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_position(done);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(bar)
}

fn trial_done(bar: &Option<indicatif::ProgressBar>, key: &TrialKey, result: &TrialResult) {
    if let Some(bar) = bar {
        bar.inc(1);
        bar.set_message(format!(
            "{} / {} #{}: {}",
            key.task,
            key.arm,
            key.trial + 1,
            result.outcome
        ));
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn print_report(report: &Report, suite: &Suite, db: &Path) {
    let mut out = std::io::stdout().lock();
    let w = report
        .arms
        .iter()
        .map(|a| a.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let _ = writeln!(
        out,
        "\n{:<w$} {:>5} {:>6} {:>6} {:>9}  {:<15} {:>7} {:>8} {:>9} {:>15} {:>8}",
        "ARM",
        "RULES",
        "TRIALS",
        "PASSED",
        "PASS RATE",
        "95% CI",
        "1ST TRY",
        "ATTEMPTS",
        "COST",
        "TOKENS IN/OUT",
        "WALL"
    );
    for a in &report.arms {
        let cost = a.cost_usd.map_or("-".into(), |c| format!("${c:.2}"));
        let tokens = match (a.input_tokens, a.output_tokens) {
            (Some(i), Some(o)) => format!("{i}/{o}"),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<w$} {:>5} {:>6} {:>6} {:>9}  {:<15} {:>7} {:>8.2} {:>9} {:>15} {:>8}",
            a.name,
            a.rules,
            a.trials,
            a.passed,
            pct(a.pass_rate),
            format!("[{:.1}, {:.1}]", 100.0 * a.ci_low, 100.0 * a.ci_high),
            a.first_attempt_passed,
            a.mean_attempts,
            cost,
            tokens,
            super::secs(std::time::Duration::from_millis(a.wall_ms)),
        );
    }
    for a in &report.arms {
        if a.errors > 0 {
            let _ = writeln!(
                out,
                "  {}: {} trial(s) ended in an error (the agent or the tests could not run; counted as not passed)",
                a.name, a.errors
            );
        }
        if a.teacher_input_tokens + a.teacher_output_tokens > 0 {
            let _ = writeln!(
                out,
                "  {}: the teacher used {}/{} tokens",
                a.name, a.teacher_input_tokens, a.teacher_output_tokens
            );
        }
    }
    let _ = writeln!(out);
    for d in &report.differences {
        let _ = writeln!(
            out,
            "{} − {}: {:+.1} points, 95% CI [{:+.1}, {:+.1}] (Newcombe){}",
            d.arm,
            d.baseline,
            100.0 * d.diff,
            100.0 * d.ci_low,
            100.0 * d.ci_high,
            if d.significant {
                ""
            } else {
                ": not distinguishable from chance with these trials"
            }
        );
    }
    if let Some(t) = &report.train {
        let _ = writeln!(
            out,
            "learning pass: {} train task(s), {} passed, {} rule(s) learned",
            t.trials, t.passed, report.learned_rules
        );
    }
    let _ = writeln!(out);
    let tw = report
        .tasks
        .iter()
        .map(|t| t.id.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut header = format!("{:<tw$} {:<6}", "TASK", "SPLIT");
    for a in &report.arms {
        header.push_str(&format!(
            " {:>w$}",
            a.name,
            w = a.name.chars().count().max(7)
        ));
    }
    let _ = writeln!(out, "{header}");
    for t in &report.tasks {
        let mut line = format!("{:<tw$} {:<6}", t.id, t.split.as_str());
        for a in &t.arms {
            line.push_str(&format!(
                " {:>w$}",
                format!("{}/{}", a.passed, a.trials),
                w = a.name.chars().count().max(7)
            ));
        }
        let _ = writeln!(out, "{line}");
    }
    let n = report.trials.len().max(1) as f64;
    let overhead = report
        .trials
        .iter()
        .map(|t| t.result.overhead_ms as f64)
        .sum::<f64>()
        / n;
    let _ = writeln!(
        out,
        "\nbench {} of {} ({} trial(s) run now); its own time: {:.0} ms per trial \
         (copy, rules, snapshots, record; agent, tests and set-up excluded); results in {}",
        report.bench_id,
        suite.path.display(),
        report.ran_now,
        overhead,
        db.display()
    );
}
