/* main.c — the sluice command: dispatch to one file per subcommand. */
#include "cli.h"

#include <signal.h>
#include <string.h>

static const char usage_text[] =
    "usage: sluice COMMAND [options]\n"
    "\n"
    "A fast, streaming LLM traffic engine. With no provider configured (no\n"
    "OPENAI_BASE_URL, OPENAI_API_KEY or --base-url) every command uses the embedded mock.\n"
    "\n"
    "commands:\n"
    "  batch     run a JSONL file of requests: bounded, rate-limited, retried, resumable\n"
    "  chat      stream one completion to the terminal as it is generated\n"
    "  mock      serve an OpenAI-compatible upstream that misbehaves on demand\n"
    "\n"
    "  sluice COMMAND --help    options of a command\n"
    "  sluice --version\n"
    "\n"
    "exit codes: 0 ok; 1 failed (batch: some ids failed); 2 usage or input error;\n"
    "3 cannot connect or connection lost; 4 timeout; 5 HTTP error from the provider; 6 malformed "
    "or cut\n"
    "answer; 130 interrupted.\n";

int main(int argc, char **argv)
{
    /* A reader that goes away (sluice chat | head) must not kill us mid-write. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fputs(usage_text, stderr);
        return SL_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("sluice %s\n", sl_version());
        return SL_EXIT_OK;
    }
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        return SL_EXIT_OK;
    }
    if (!strcmp(cmd, "batch"))
        return cmd_batch(argc - 1, argv + 1);
    if (!strcmp(cmd, "chat"))
        return cmd_chat(argc - 1, argv + 1);
    if (!strcmp(cmd, "mock"))
        return cmd_mock(argc - 1, argv + 1);
    fprintf(stderr, "sluice: unknown command '%s'\n\n%s", cmd, usage_text);
    return SL_EXIT_USAGE;
}
