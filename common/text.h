/* text.h - small string helpers with no dependency beyond libc, shared by
 * the service's config parser (config.c) and the staff's command (cli/api.c,
 * which links only this object of common/, not libbroadway.a). */
#ifndef BW_TEXT_H
#define BW_TEXT_H

/* Trims blanks (space, tab) at the start and blanks and line ends (space,
 * tab, \n, \r) at the end of s, in place; returns the first kept byte. */
char *bw_trim(char *s);

#endif
