//! What the teacher is asked. One call per failure: a short root-cause analysis, then one
//! rule in the prototype's format. (The prototype made two calls, analysis then rule; one
//! structured call costs half the round trips and keeps the analysis next to the rule.)

/// The request to a teacher: system prompt and user message.
#[derive(Clone, Debug, PartialEq)]
pub struct Lesson {
    /// Instructions for the kind of failure.
    pub system: String,
    /// The failure itself, redacted and compacted, plus the rules already known.
    pub user: String,
}

/// The answer format every prompt asks for; `rules::format::parse_answer` reads it.
const ANSWER_FORMAT: &str = "\
Answer in exactly this format and nothing after it:

Analysis: <two or three sentences on the root cause of the agent's mistake>

### <Category, two or three words>
- **Rule**: <one imperative sentence: what to do or avoid>
- **When**: <one sentence: the situation in which the rule applies>
- **Why**: <one sentence: what goes wrong otherwise, grounded in this failure>";

const QUALITY: &str = "\
A good rule is specific and actionable: it names the concrete practice (\"Return None, not 0, \
from safe_* helpers when an operation has no valid result\"), never a platitude (\"write \
correct code\", \"be careful\", \"run the tests\"). It generalises one step beyond this failure, \
to the kind of situation rather than this one test, but no further. It is short. It must not \
repeat or contradict a rule the agent already has; if the lesson is already covered by one of \
them, sharpen it into a more specific rule instead.";

/// The system prompt for test failures (`failure_prompts: test_failure: default`).
const TEST_FAILURE: &str = "\
You are the teacher in a learning loop for AI coding agents. A coding agent was given a task \
in a software project and changed the code; then the project's tests failed. You see the \
task, the failing tests with their assertion and error lines, the test summary, the agent's \
change as a diff and its final message.

Find the root cause of the agent's mistake: the wrong assumption, the missed requirement, the \
misread convention or the bad habit that produced this diff. Read the assertion lines closely: \
they say what was expected and what the code gave. Then write ONE rule that, placed in the \
agent's instruction file before the task, would have prevented this mistake here and on \
similar tasks.";

/// The system prompt for findings of the semantic review (`failure_sources: semantic`).
const SEMANTIC_FINDING: &str = "\
You are the teacher in a learning loop for AI coding agents. A coding agent was given a task \
in a software project and changed the code. The project's tests passed, but a reviewer found a \
problem the tests do not catch (the task only partly done, tests deleted or weakened, unrelated \
edits, debug leftovers, a fix in the wrong layer). You see the task, the reviewer's finding with \
the lines that show it, the agent's change as a diff and its final message.

Find the habit or wrong assumption that produced this problem, and write ONE rule that, placed \
in the agent's instruction file before the task, would have prevented it here and on similar \
tasks.";

/// The system prompt for `failure_type`, as named by `failure_prompts` (the prototype's
/// names are accepted).
pub fn system_prompt(prompt_name: &str) -> String {
    let body = match prompt_name {
        "default" | "test_failure" | "test_failure_system" => TEST_FAILURE,
        "semantic" | "semantic_finding" => SEMANTIC_FINDING,
        _ => TEST_FAILURE,
    };
    format!("{body}\n\n{QUALITY}\n\n{ANSWER_FORMAT}")
}

/// Builds the lesson for one failure payload.
pub fn lesson(prompt_name: &str, payload: &str, known_rules: &[String]) -> Lesson {
    let mut user = String::new();
    if known_rules.is_empty() {
        user.push_str("The agent has no learned rules yet.\n\n");
    } else {
        user.push_str("Rules the agent already has (do not repeat them):\n");
        for rule in known_rules {
            user.push_str(&format!("- {rule}\n"));
        }
        user.push('\n');
    }
    user.push_str("# The failure\n\n");
    user.push_str(payload);
    Lesson {
        system: system_prompt(prompt_name),
        user,
    }
}

/// The follow-up when an answer held no readable rule.
pub fn correction(problem: &str) -> String {
    format!(
        "Your answer could not be read as a rule ({problem}). Answer again, in exactly the \
         format asked for: the Analysis line, then the ### category line and the three \
         bullets **Rule**, **When** and **Why**."
    )
}
