// The agent's stream (`POST /api/agent/run`, nexent-api.md §2): `data: {"type", "content"}` lines. This file
// parses the bytes as Nexent's own frontend does (split on newlines, `data:` lines, JSON, drop messages whose
// type or content is empty) and folds the messages into what the chat screen shows: steps with their
// thinking, code, observations and errors, the final answer, and the sources found on the way.

export interface AgentMessage {
  type: string;
  content: string;
}

export interface Source {
  title: string;
  text: string;
  filename?: string | null;
  url?: string | null;
  source_type?: string | null;
  score?: number | null;
  score_details?: { accurate?: number; semantic?: number; accuracy?: number };
  cite_index: number;
  tool_sign: string;
  search_type?: string | null;
}

export interface Step {
  number: number;
  thinking: string;
  code: string;
  /// Tool calls as the agent announces them (`tool`, `parse`).
  calls: string[];
  /// What came back: observations, execution logs.
  observations: string[];
  errors: string[];
  /// `token_count`: the step's duration as Nexent reports it.
  duration?: string;
}

export interface AgentRun {
  steps: Step[];
  answer: string;
  sources: Source[];
  errors: string[];
}

/** Incremental parser: feed it chunks as they arrive, get whole messages back. */
export class AgentStreamParser {
  private buffer = "";
  private decoder = new TextDecoder();

  feed(chunk: Uint8Array | string): AgentMessage[] {
    this.buffer += typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    const messages: AgentMessage[] = [];
    let newline = this.buffer.indexOf("\n");
    while (newline >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      newline = this.buffer.indexOf("\n");
      if (!line.startsWith("data:")) continue;
      try {
        const message = JSON.parse(line.slice(5).trim()) as { type?: unknown; content?: unknown };
        const type = typeof message.type === "string" ? message.type : "";
        const content =
          typeof message.content === "string" ? message.content : message.content == null ? "" : JSON.stringify(message.content);
        if (type && content) messages.push({ type, content });
      } catch {
        // A line that is not JSON is not a message (Nexent's parser skips it too).
      }
    }
    return messages;
  }
}

export function emptyRun(): AgentRun {
  return { steps: [], answer: "", sources: [], errors: [] };
}

function currentStep(run: AgentRun): Step {
  let step = run.steps[run.steps.length - 1];
  if (!step) {
    step = { number: 1, thinking: "", code: "", calls: [], observations: [], errors: [] };
    run.steps.push(step);
  }
  return step;
}

function parseSources(content: string): Source[] {
  try {
    const parsed: unknown = JSON.parse(content);
    const list = Array.isArray(parsed) ? parsed : [parsed];
    return list.filter((item): item is Source => typeof item === "object" && item !== null && "cite_index" in item);
  } catch {
    return [];
  }
}

/** Folds one message into the run (a new object, so React sees the change). */
export function applyMessage(previous: AgentRun, message: AgentMessage): AgentRun {
  const run: AgentRun = {
    ...previous,
    steps: previous.steps.map((step) => ({ ...step, calls: [...step.calls], observations: [...step.observations], errors: [...step.errors] })),
    sources: [...previous.sources],
    errors: [...previous.errors],
  };
  switch (message.type) {
    case "step_count": {
      const number = Number.parseInt(message.content.replace(/\D+/g, " ").trim().split(" ").pop() ?? "", 10);
      run.steps.push({
        number: Number.isFinite(number) ? number : run.steps.length + 1,
        thinking: "",
        code: "",
        calls: [],
        observations: [],
        errors: [],
      });
      break;
    }
    case "model_output_thinking":
      currentStep(run).thinking += message.content;
      break;
    case "model_output_code":
      currentStep(run).code += message.content;
      break;
    case "parse":
    case "tool":
      currentStep(run).calls.push(message.content);
      break;
    case "execution_logs":
    case "card":
      currentStep(run).observations.push(message.content);
      break;
    case "search_content":
      for (const source of parseSources(message.content)) {
        const known = run.sources.some(
          (existing) => existing.tool_sign === source.tool_sign && existing.cite_index === source.cite_index,
        );
        if (!known) run.sources.push(source);
      }
      break;
    case "token_count": {
      // Nexent sends the duration as a bit of HTML (`<span ...>Duration:5.25</span>`): the number is shown.
      const text = message.content.replace(/<[^>]*>/g, "").trim();
      const seconds = /([\d.]+)/.exec(text)?.[1];
      currentStep(run).duration = seconds ? `${seconds} s` : text;
      break;
    }
    case "error":
      if (run.steps.length > 0) currentStep(run).errors.push(message.content);
      run.errors.push(message.content);
      break;
    case "final_answer":
      run.answer += message.content;
      break;
    default:
      break;
  }
  return run;
}

/** A saved assistant message (conversation history) as a run: its units, answer and search sources. */
export function runFromHistory(units: AgentMessage[], searches: Source[] | undefined): AgentRun {
  let run = emptyRun();
  for (const unit of units) run = applyMessage(run, unit);
  for (const source of searches ?? []) {
    if (!run.sources.some((known) => known.tool_sign === source.tool_sign && known.cite_index === source.cite_index)) {
      run.sources.push(source);
    }
  }
  return run;
}
