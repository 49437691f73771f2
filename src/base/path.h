/* File paths. */
#ifndef DIFFSCOPE_PATH_H
#define DIFFSCOPE_PATH_H

/* "DIR/NAME", malloc'd; NULL with a message when out of memory. */
char *ds_path_join(const char *dir, const char *name);

#endif
