/* main.c — the sluice command: dispatch to one file per subcommand. */
#include <stdio.h>
#include <string.h>

#include <sluice/sluice.h>

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--version")) {
        printf("sluice %s\n", sl_version());
        return 0;
    }
    fprintf(stderr, "usage: sluice COMMAND [options]\n");
    return 2;
}
