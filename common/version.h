/* version.h - the one version number of every program and of the Debian
 * package (the Makefile reads it from here). */
#ifndef BW_VERSION_H
#define BW_VERSION_H

#define BW_VERSION "1.0.0"

#endif
