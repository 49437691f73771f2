/* Entry points of the diffscope commands, one per src/cli/cmd_*.c. */
#ifndef DIFFSCOPE_COMMANDS_H
#define DIFFSCOPE_COMMANDS_H
int cmd_info(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_view(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_lens(int argc, char **argv);
int cmd_needle(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_patch(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
#endif
