/* html_entities.h — table of HTML5 named character references (generated, see html_entities.c). */
#ifndef SF_HTML_ENTITIES_H
#define SF_HTML_ENTITIES_H

#include <stddef.h>

typedef struct sf_html_entity {
    const char *name;  /* without the leading '&', with ';' when the dict key has it */
    const char *utf8;  /* replacement text */
} sf_html_entity;

#define SF_HTML_ENTITY_MAX_NAME 32

extern const sf_html_entity sf_html_entities[]; /* sorted by strcmp of name */
extern const size_t sf_html_n_entities;

#endif
