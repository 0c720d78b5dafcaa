/* dataset.c — the reference's image-to-video dataset folder (utils/dataset.py TextImagePairDataset),
 * listed for sf-batch --i2v: DIR holds exactly one target_crop_info_<ratio>.json, a JSON list of items
 * with "file_name" and "caption", and the images in DIR/<ratio>/. The checks are the reference's (one
 * metadata file, the ratio folder, every image present) plus what a line-based list needs. */
#define _POSIX_C_SOURCE 200809L
#include "tools/vae-encode/encode.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PREFIX "target_crop_info_"
#define SUFFIX ".json"

/* The one metadata file's name in dir (into name), or a line saying why not. */
static sf_status find_metadata(const char *dir, char *name, size_t cap, sf_err *err) {
    DIR *d = opendir(dir);
    if (!d) return sf_fail(err, errno == ENOTDIR ? SF_E_ARG : SF_E_IO, "--list-dataset %s: %s", dir, strerror(errno));
    int found = 0;
    struct dirent *e;
    const size_t pl = strlen(PREFIX), sl = strlen(SUFFIX);
    while ((e = readdir(d))) {
        const size_t n = strlen(e->d_name);
        if (n <= pl + sl || strncmp(e->d_name, PREFIX, pl) || strcmp(e->d_name + n - sl, SUFFIX)) continue;
        if (found++) break;
        snprintf(name, cap, "%s", e->d_name);
    }
    closedir(d);
    if (!found)
        return sf_fail(err, SF_E_NOTFOUND, "--list-dataset %s: no %s<ratio>%s metadata file (the reference's i2v data layout)", dir,
                       PREFIX, SUFFIX);
    if (found > 1) return sf_fail(err, SF_E_ARG, "--list-dataset %s: more than one %s*%s file", dir, PREFIX, SUFFIX);
    return SF_OK;
}

static const char *item_str(const cJSON *item, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

sf_status sf_vae_encode_list_dataset(const char *dir, FILE *out, sf_err *err) {
    char meta[1024], path[8192], ratio[1024];
    sf_status s = find_metadata(dir, meta, sizeof meta, err);
    if (s) return s;
    /* target_crop_info_26-15.json → the images' folder 26-15 (the reference: the stem's last '_' field) */
    snprintf(ratio, sizeof ratio, "%s", strrchr(meta, '_') + 1);
    ratio[strlen(ratio) - strlen(SUFFIX)] = 0;
    snprintf(path, sizeof path, "%s/%s", dir, ratio);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return sf_fail(err, SF_E_NOTFOUND, "--list-dataset %s: no image folder %s/ (named after %s)", dir, ratio, meta);
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s", dir, meta);
    if ((s = sf_read_file(path, &text, &len, (size_t)64 << 20, err))) return s;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return sf_fail(err, SF_E_FORMAT, "%s: not a JSON list of items", path);
    }
    int idx = 0;
    const cJSON *item;
    /* checked whole before a line is printed: a caller never reads half a list */
    cJSON_ArrayForEach(item, root) {
        const char *file = item_str(item, "file_name"), *cap = item_str(item, "caption");
        if (!file || !cap) {
            s = sf_fail(err, SF_E_FORMAT, "%s: item %d has no string %s", path, idx, file ? "\"caption\"" : "\"file_name\"");
            break;
        }
        if (!file[0] || strchr(file, '\n') || strchr(file, '\t') || strchr(file, '\r')) {
            s = sf_fail(err, SF_E_FORMAT, "%s: item %d: file_name is empty or holds a tab or line break", path, idx);
            break;
        }
        if (strpbrk(cap, "\t\n\r")) {
            s = sf_fail(err, SF_E_UNSUPPORTED, "%s: item %d: the caption holds a tab or line break, which a prompt list cannot "
                        "carry", path, idx);
            break;
        }
        char img[8192];
        snprintf(img, sizeof img, "%s/%s/%s", dir, ratio, file);
        if (access(img, R_OK) != 0) {
            s = sf_fail(err, SF_E_NOTFOUND, "%s: item %d: image not found: %s", path, idx, img);
            break;
        }
        idx++;
    }
    if (!s) {
        cJSON_ArrayForEach(item, root) fprintf(out, "%s/%s/%s\t%s\n", dir, ratio, item_str(item, "file_name"), item_str(item, "caption"));
        if (fflush(out) != 0 || ferror(out)) s = sf_fail(err, SF_E_IO, "writing the list: %s", strerror(errno));
    }
    cJSON_Delete(root);
    return s;
}
