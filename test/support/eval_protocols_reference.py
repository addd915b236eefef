#!/usr/bin/env python3
"""Reference item lists for test/unit/eval-protocols.test.ts: the loops of the official DiffSim scripts
(night_main.py, tid_main.py, cute_main.py, dreambench_main.py, ipref_main.py, style_main.py),
copied with the scoring removed, using Python's own `random`, csv and json modules.

    python3 test/eval_protocols_reference.py BENCHMARK DIR [--seed N] [--given] [--trials N]
                                             [--originals DIR] [--votes-at-least V]

Listings are sorted (sorted(os.listdir(...)), os.walk with dirs and files sorted in place) unless
--given, which uses os.listdir / os.walk unchanged, i.e. exactly what the scripts do. Prints the
items as one JSON list; paths relative to DIR (IPref anchors: relative to --originals).
"""
import argparse
import csv
import json
import os
import random
import sys


def make_listing(given):
    if given:
        return os.listdir, os.walk

    def listdir(p):
        return sorted(os.listdir(p))

    def walk(top):
        for root, dirs, files in os.walk(top):
            dirs.sort()
            files.sort()
            yield root, dirs, files

    return listdir, walk


def item(root, anchor, cand1, cand2, prompt, truth, label=None, anchor_root=None):
    out = {
        "anchor": os.path.relpath(anchor, anchor_root or root),
        "cand1": os.path.relpath(cand1, root),
        "cand2": os.path.relpath(cand2, root),
        "prompt": prompt,
        "truth": truth,
    }
    if label is not None:
        out["label"] = label
    if anchor_root is not None:
        out["anchorRoot"] = "originals"
    return out


def nights(a, listdir, walk):
    items = []
    with open(os.path.join(a.dir, "data.csv"), mode='r') as file:
        reader = csv.DictReader(file)
        for row in reader:
            if row['split'] != 'val':
                continue
            if a.votes_at_least is not None and not float(row['votes']) >= a.votes_at_least:
                continue
            ref_path = os.path.join(a.dir, row['ref_path'])
            left_path = os.path.join(a.dir, row['left_path'])
            right_path = os.path.join(a.dir, row['right_path'])
            vote = int(row['left_vote'])
            prompt = f"An image of a {row['prompt'].lower()}"
            items.append(item(a.dir, ref_path, left_path, right_path, prompt, 1 if vote == 1 else 2, label=vote))
    return items


def tid2013(a, listdir, walk):
    image_path = a.dir
    items = []
    prompt = "High quality image"
    for ref_i in range(1, 26):
        ref_path = (f"I{ref_i:02}.BMP", f"i{ref_i:02}.bmp", f"i{ref_i:02}.BMP", f"I{ref_i:02}.bmp")
        for path in ref_path:
            full_path = os.path.join(image_path, path)
            if os.path.exists(full_path):
                ref_path = full_path
                break
        for distortion_i in range(1, 25):
            distortion_i_1_path = (f"i{ref_i:02}_{distortion_i:02}_2.bmp", f"I{ref_i:02}_{distortion_i:02}_2.BMP", f"I{ref_i:02}_{distortion_i:02}_2.bmp", f"i{ref_i:02}_{distortion_i:02}_2.BMP")
            for path in distortion_i_1_path:
                full_path = os.path.join(image_path, path)
                if os.path.exists(full_path):
                    distortion_i_1_path = full_path
                    break
            distortion_i_5_path = (f"i{ref_i:02}_{distortion_i:02}_3.bmp", f"I{ref_i:02}_{distortion_i:02}_3.BMP", f"I{ref_i:02}_{distortion_i:02}_3.bmp", f"i{ref_i:02}_{distortion_i:02}_3.BMP")
            for path in distortion_i_5_path:
                full_path = os.path.join(image_path, path)
                if os.path.exists(full_path):
                    distortion_i_5_path = full_path
                    break
            items.append(item(image_path, ref_path, distortion_i_1_path, distortion_i_5_path, prompt, 1))
    return items


def cute(a, listdir, walk):
    items = []
    random.seed(a.seed)
    for cls in listdir(a.dir):
        if cls == "main.py" or cls == ".DS_Store":
            continue
        cls_dir_path = os.path.join(a.dir, cls)
        for experiment in range(10):
            for subdir_lvl1, dirs_lvl2, _ in walk(cls_dir_path):
                for dir_lvl2 in dirs_lvl2:
                    dir_lvl2_path = os.path.join(subdir_lvl1, dir_lvl2)
                    subdirs_lvl3 = [d for d in listdir(dir_lvl2_path) if os.path.isdir(os.path.join(dir_lvl2_path, d))]
                    if not subdirs_lvl3:
                        continue
                    selected_lvl3_dir = random.choice(subdirs_lvl3)
                    selected_lvl3_dir_path = os.path.join(dir_lvl2_path, selected_lvl3_dir)
                    image_files = [f for f in listdir(selected_lvl3_dir_path) if f.endswith(('.png', '.jpg', '.jpeg'))]
                    if len(image_files) < 2:
                        continue
                    image_A, image_B = random.sample(image_files, 2)
                    image_A_path = os.path.join(selected_lvl3_dir_path, image_A)
                    image_B_path = os.path.join(selected_lvl3_dir_path, image_B)
                    other_dirs_lvl2 = [d for d in dirs_lvl2 if d != dir_lvl2]
                    if not other_dirs_lvl2:
                        continue
                    selected_other_lvl2 = random.choice(other_dirs_lvl2)
                    selected_other_lvl2_path = os.path.join(subdir_lvl1, selected_other_lvl2)
                    selected_other_lvl3_dir_path = os.path.join(selected_other_lvl2_path, selected_lvl3_dir)
                    other_image_files = [f for f in listdir(selected_other_lvl3_dir_path) if f.endswith(('.png', '.jpg', '.jpeg'))]
                    if not other_image_files:
                        continue
                    image_C = random.choice(other_image_files)
                    image_C_path = os.path.join(selected_other_lvl3_dir_path, image_C)
                    prompt = f"The photo of a {cls}"
                    items.append(item(a.dir, image_A_path, image_B_path, image_C_path, prompt, 1))
    return items


def dreambench(a, listdir, walk):
    image_path = a.dir
    random.seed(a.seed)
    prompt = "High quality image"  # args.prompt's default; no .sh passes --prompt
    rating_path = os.path.join(image_path, "data_human_rating")
    items = []
    for pipe_dir in listdir(image_path):
        if "blip_diffusion" in pipe_dir:
            json_name = "blip_diffusion-cp.json"
        elif "dreambooth" in pipe_dir:
            json_name = "dreambooth_sd-cp.json"
        elif "ip_adapter_plus_sdxl" in pipe_dir:
            json_name = "ip_adapter_plus_vit_h_sdxl-cp.json"
        elif "ip_adapter_sdxl" in pipe_dir:
            json_name = "ip_adapter_vit_g_sdxl-cp.json"
        elif "textual_inversion" in pipe_dir:
            json_name = "textual_inversion_sd-cp.json"
        else:
            continue
        with open(os.path.join(rating_path, "merged_data/group1/", json_name), 'r') as file:
            anno_1 = json.load(file)
        with open(os.path.join(rating_path, "merged_data/group2/", json_name), 'r') as file:
            anno_2 = json.load(file)
        pipe_image_path = os.path.join(image_path, pipe_dir)
        image1_dir = os.path.join(pipe_image_path, "src_image")
        image2_dir = os.path.join(pipe_image_path, "tgt_image")
        text_dir = os.path.join(pipe_image_path, "text")
        for ref_image in listdir(image1_dir):
            filtered_1 = {k: v for k, v in anno_1.items() if k.startswith(ref_image)}
            filtered_2 = {k: v for k, v in anno_2.items() if k.startswith(ref_image)}
            result = {}
            for key, value in filtered_1.items():
                if abs(value - filtered_2[key]) > 2:
                    continue
                result[key] = (value + filtered_2[key]) / 2
            selected_pairs = {}
            for key_a, value_a in result.items():
                for key_b, value_b in result.items():
                    if key_a == key_b or abs(value_a - value_b) < 2:
                        continue
                    if (key_b, key_a) in selected_pairs:
                        continue
                    combined_key = (key_a, key_b)
                    selected_pairs[combined_key] = (0 if value_a > value_b else 1)
            selected_pairs = list(selected_pairs.items())
            if len(selected_pairs) > 5:
                selected_pairs = random.sample(selected_pairs, 5)
            ref_image_file = os.path.join(image1_dir, ref_image, "0_0.jpg")
            for pair in selected_pairs:
                tgt_image1_file = os.path.join(image2_dir, ref_image, f"{pair[0][0][-1]}_0.jpg")
                tgt_image1_text = os.path.join(text_dir, ref_image, f"{pair[0][0][-1]}_0.txt")
                tgt_image2_file = os.path.join(image2_dir, ref_image, f"{pair[0][1][-1]}_0.jpg")
                tgt_image2_text = os.path.join(text_dir, ref_image, f"{pair[0][1][-1]}_0.txt")
                with open(tgt_image1_text, "r") as t1, open(tgt_image2_text, "r") as t2:
                    t1.readline()
                    t2.readline()
                items.append(item(image_path, ref_image_file, tgt_image1_file, tgt_image2_file, prompt, 1 if pair[1] == 0 else 2, label=pair[1]))
    return items


def ipref(a, listdir, walk):
    original_path = a.originals
    items = []
    prompt = "High quality image"
    for cls in listdir(a.dir):
        cls_dir = os.path.join(a.dir, cls)
        compare_pairs = [("1.0.png", "0.6.png"), ("0.8.png", "0.4.png"), ("0.6.png", "0.3.png"), ("0.4.png", "0.35.png"), ("0.3.png", "0.2.png")]
        ref_path = os.path.join(original_path, f"{cls}.JPG")
        for (image1, image2) in compare_pairs:
            image1_path = os.path.join(cls_dir, image1)
            image2_path = os.path.join(cls_dir, image2)
            items.append(item(a.dir, ref_path, image1_path, image2_path, prompt, 1, anchor_root=original_path))
    return items


def style(a, listdir, walk):
    random.seed(a.seed)
    prompt = "High quality image"  # args.prompt's default; style_main.sh passes no --prompt
    subdir_dict = {}
    for root, dirs, _ in walk(a.dir):
        for dir in dirs:
            full_dir_path = os.path.join(root, dir)
            images = [os.path.join(full_dir_path, f) for f in listdir(full_dir_path) if f.endswith(('.png', '.jpg', '.jpeg'))]
            if len(images) >= 2:
                subdir_dict[full_dir_path] = images
    subdir_paths = list(subdir_dict.keys())
    items = []
    for experiment in range(a.trials):
        if len(subdir_paths) < 2:
            continue
        dir_A, dir_C = random.sample(subdir_paths, 2)
        image_A, image_B = random.sample(subdir_dict[dir_A], 2)
        image_C = random.choice(subdir_dict[dir_C])
        items.append(item(a.dir, image_A, image_B, image_C, prompt, 1))
    return items


PROTOCOLS = {"nights": nights, "tid2013": tid2013, "cute": cute, "dreambench": dreambench, "ipref": ipref, "sref": style, "instantstyle": style}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("benchmark", choices=sorted(PROTOCOLS))
    p.add_argument("dir")
    p.add_argument("--seed", type=int, default=2334)
    p.add_argument("--given", action="store_true")
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--originals")
    p.add_argument("--votes-at-least", type=float)
    a = p.parse_args()
    listdir, walk = make_listing(a.given)
    items = PROTOCOLS[a.benchmark](a, listdir, walk)
    for i, it in enumerate(items):
        it["item"] = i
    json.dump(items, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
