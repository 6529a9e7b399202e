"""Every string the chat shows, in Kazakh, Russian and English.

The interface language is chosen in the chat (Kazakh by default); the answer itself is always in
the language of the question. Gradio's own strings (the upload drop zone, toast titles, the
login page) do not follow a language chosen inside the app, so the chat replaces them with the
ones here (see ``ui/style.py`` and ``ui/login.py``).
"""

from __future__ import annotations

from rag.pipeline import QuestionError

LANGUAGES = {"Қазақша": "kk", "Русский": "ru", "English": "en"}
DEFAULT_LANGUAGE = "kk"

TEXT: dict[str, dict[str, str]] = {
    "kk": {
        "title": "Құжаттар бойынша сұрақ-жауап",
        "subtitle": "Жүктелген құжаттардан жауап береді және әр сөйлемнің дереккөзін көрсетеді. "
        "Дереккөзді ашу үшін [1] белгісін басыңыз.",
        "chat": "Әңгіме",
        "placeholder": "Сұрағыңызды жазыңыз…",
        "input": "Сұрақ",
        "send": "Жіберу",
        "new_chat": "Жаңа әңгіме",
        "examples": "Мысал сұрақтар",
        "sources": "Дереккөздер",
        "sources_empty": "Жауаптағы [1] белгісін басқанда дереккөз осында ашылады.",
        "no_citations": "Бұл жауапта дереккөз жоқ.",
        "closest": "Жауап табылмады; ең жақын үзінділер:",
        "turn": "Сұрақ",
        "position": "{start}–{end} таңба ({total} таңбаның {pct}%-ы)",
        "copy": "Көшіру",
        "copied": "Көшірілді",
        "regenerate": "Қайта жауап беру",
        "close": "Жабу",
        "documents": "Құжаттар",
        "upload": "Құжат жүктеу (.txt, .md, .pdf, .docx, .html; 10 МБ-қа дейін, PDF 40 МБ-қа дейін)",
        "drop": "Файлды осында тастаңыз",
        "or": "немесе",
        "click_upload": "жүктеу үшін басыңыз",
        "remove_pick": "Жүктелген құжат",
        "remove": "Жою",
        "confirm_remove": "«{doc_id}» құжатын жою керек пе? Оны қайтару мүмкін емес.",
        "confirm_yes": "Иә, жою",
        "cancel": "Болдырмау",
        "settings": "Баптаулар",
        "top_k": "Іздейтін үзінділер саны",
        "threshold": "Жауап беру табалдырығы",
        "threshold_info": "Дәлелдің бағасы осыдан төмен болса, бот құжаттарда жауап жоқ дейді; "
        "жоғары мән — көбірек сақтық (есептелгені: {kk} қазақша, {other} орысша мен ағылшынша).",
        "generator": "Жауап генераторы",
        "thinking": "Құжаттардан іздеп жатырмын…",
        "added": "Қосылды: «{title}» ({chunks} үзінді).",
        "removed": "Жойылды: {doc_id}.",
        "rejected": "Құжат қабылданбады",
        "too_large": "файл тым үлкен",
        "bad_type": "бұл файл түрі қолдау көрмейді (.txt, .md, .pdf, .docx, .html ғана)",
        "not_found": "құжат табылмады",
        "protected": "кірістірілген құжатты жоюға болмайды",
        "unreadable": "файлды оқу мүмкін болмады",
        "thanks": "Рақмет! Пікіріңіз сақталды.",
        "col_title": "Атауы",
        "col_chunks": "Үзінді",
        "col_source": "Түрі",
        "seed": "кірістірілген",
        "upload_kind": "жүктелген",
        "api": "HTTP API",
        "bad_question": "Сұрақ қабылданбады",
        "info_title": "Ақпарат",
        "warning_title": "Ескерту",
        "error_title": "Қате",
        "success_title": "Дайын",
        "q_not_text": "сұрақ мәтін болуы керек",
        "q_empty": "сұрақ бос",
        "q_no_words": "сұрақта сөз жоқ: сұрағыңызды сөзбен жазыңыз",
        "q_too_long": "сұрақ тым ұзын (шегі — {limit} таңба)",
        "q_bad_top_k": "үзінділер саны 1 мен {limit} аралығында болуы керек",
        "q_invalid": "сұрақты қабылдау мүмкін болмады",
        "login_title": "Кіру",
        "login_token": "API токені",
        "login_hint": "Бұл сервер токенмен қорғалған: құпиясөз орнына сервер іске қосылғанда "
        "KAZRAG_API_TOKEN айнымалысында берілген API токенін енгізіңіз.",
        "login_button": "Кіру",
        "login_failed": "Токен дұрыс емес.",
    },
    "ru": {
        "title": "Вопросы и ответы по документам",
        "subtitle": "Отвечает по загруженным документам и показывает источник каждого "
        "предложения. Нажмите на метку [1], чтобы открыть источник.",
        "chat": "Диалог",
        "placeholder": "Напишите вопрос…",
        "input": "Вопрос",
        "send": "Отправить",
        "new_chat": "Новый диалог",
        "examples": "Примеры вопросов",
        "sources": "Источники",
        "sources_empty": "Нажмите на метку [1] в ответе, и источник откроется здесь.",
        "no_citations": "В этом ответе нет источников.",
        "closest": "Ответ не найден; ближайшие фрагменты:",
        "turn": "Вопрос",
        "position": "символы {start}–{end} из {total} ({pct}%)",
        "copy": "Копировать",
        "copied": "Скопировано",
        "regenerate": "Ответить заново",
        "close": "Закрыть",
        "documents": "Документы",
        "upload": "Загрузить документ (.txt, .md, .pdf, .docx, .html; до 10 МБ, PDF до 40 МБ)",
        "drop": "Перетащите файл сюда",
        "or": "или",
        "click_upload": "нажмите, чтобы выбрать",
        "remove_pick": "Загруженный документ",
        "remove": "Удалить",
        "confirm_remove": "Удалить документ «{doc_id}»? Это нельзя отменить.",
        "confirm_yes": "Да, удалить",
        "cancel": "Отмена",
        "settings": "Настройки",
        "top_k": "Сколько фрагментов искать",
        "threshold": "Порог ответа",
        "threshold_info": "Если лучшее доказательство оценено ниже порога, бот говорит, что "
        "в документах ответа нет; выше — осторожнее (откалибровано: {kk} kk, {other} ru/en).",
        "generator": "Генератор ответа",
        "thinking": "Ищу в документах…",
        "added": "Добавлен: «{title}» ({chunks} фрагм.).",
        "removed": "Удалён: {doc_id}.",
        "rejected": "Документ не принят",
        "too_large": "файл слишком большой",
        "bad_type": "этот тип файла не поддерживается (только .txt, .md, .pdf, .docx, .html)",
        "not_found": "документ не найден",
        "protected": "встроенный документ удалить нельзя",
        "unreadable": "не удалось прочитать файл",
        "thanks": "Спасибо! Отзыв сохранён.",
        "col_title": "Название",
        "col_chunks": "Фрагм.",
        "col_source": "Тип",
        "seed": "встроенный",
        "upload_kind": "загружен",
        "api": "HTTP API",
        "bad_question": "Вопрос не принят",
        "info_title": "Информация",
        "warning_title": "Предупреждение",
        "error_title": "Ошибка",
        "success_title": "Готово",
        "q_not_text": "вопрос должен быть текстом",
        "q_empty": "вопрос пуст",
        "q_no_words": "в вопросе нет слов: задайте вопрос словами",
        "q_too_long": "вопрос слишком длинный (предел — {limit} символов)",
        "q_bad_top_k": "число фрагментов должно быть от 1 до {limit}",
        "q_invalid": "вопрос не удалось принять",
        "login_title": "Вход",
        "login_token": "API-токен",
        "login_hint": "Этот сервер защищён токеном: вместо пароля введите API-токен — значение "
        "переменной KAZRAG_API_TOKEN, с которой запущен сервер.",
        "login_button": "Войти",
        "login_failed": "Неверный токен.",
    },
    "en": {
        "title": "Questions and answers over documents",
        "subtitle": "Answers from the loaded documents and shows the source of every sentence. "
        "Click a marker like [1] to open its source.",
        "chat": "Chat",
        "placeholder": "Type your question…",
        "input": "Question",
        "send": "Send",
        "new_chat": "New conversation",
        "examples": "Example questions",
        "sources": "Sources",
        "sources_empty": "Click a marker like [1] in an answer to open its source here.",
        "no_citations": "This answer has no sources.",
        "closest": "No answer found; the closest passages:",
        "turn": "Question",
        "position": "characters {start}–{end} of {total} ({pct}%)",
        "copy": "Copy",
        "copied": "Copied",
        "regenerate": "Regenerate",
        "close": "Close",
        "documents": "Documents",
        "upload": "Upload a document (.txt, .md, .pdf, .docx, .html; up to 10 MB, PDF 40 MB)",
        "drop": "Drop a file here",
        "or": "or",
        "click_upload": "click to choose one",
        "remove_pick": "Uploaded document",
        "remove": "Remove",
        "confirm_remove": "Remove the document “{doc_id}”? This cannot be undone.",
        "confirm_yes": "Yes, remove",
        "cancel": "Cancel",
        "settings": "Settings",
        "top_k": "Passages to retrieve",
        "threshold": "Answer threshold",
        "threshold_info": "When the best evidence scores below this, the bot says the documents "
        "do not hold the answer; higher is more cautious (calibrated: {kk} kk, {other} ru/en).",
        "generator": "Answer generator",
        "thinking": "Searching the documents…",
        "added": "Added: “{title}” ({chunks} passages).",
        "removed": "Removed: {doc_id}.",
        "rejected": "Document not accepted",
        "too_large": "the file is too large",
        "bad_type": "this file type is not supported (only .txt, .md, .pdf, .docx, .html)",
        "not_found": "document not found",
        "protected": "a built-in document cannot be removed",
        "unreadable": "the file could not be read",
        "thanks": "Thank you! Your feedback was saved.",
        "col_title": "Title",
        "col_chunks": "Passages",
        "col_source": "Kind",
        "seed": "built-in",
        "upload_kind": "uploaded",
        "api": "HTTP API",
        "bad_question": "Question not accepted",
        "info_title": "Info",
        "warning_title": "Warning",
        "error_title": "Error",
        "success_title": "Success",
        "q_not_text": "the question must be text",
        "q_empty": "the question is empty",
        "q_no_words": "the question has no words: please ask a question in words",
        "q_too_long": "the question is too long (the limit is {limit} characters)",
        "q_bad_top_k": "the number of passages must be between 1 and {limit}",
        "q_invalid": "the question could not be accepted",
        "login_title": "Log in",
        "login_token": "API token",
        "login_hint": "This server is protected by a token: as the password, enter the API "
        "token, the value of KAZRAG_API_TOKEN the server was started with.",
        "login_button": "Log in",
        "login_failed": "Wrong token.",
    },
}

# The library reports its stages in English (logs, API); the chat shows them in its language.
STAGES: dict[str, dict[str, str]] = {
    "checking the file": {"kk": "Файл тексерілуде", "ru": "Проверка файла"},
    "extracting the text": {"kk": "Мәтін алынуда", "ru": "Извлечение текста"},
    "cleaning": {"kk": "Мәтін тазалануда", "ru": "Очистка текста"},
    "reading the corpus": {"kk": "Корпус оқылуда", "ru": "Чтение корпуса"},
    "updating the index": {"kk": "Индекс жаңартылуда", "ru": "Обновление индекса"},
    "embedding new passages": {
        "kk": "Жаңа үзінділер векторлануда",
        "ru": "Векторизация фрагментов",
    },
    "embedding new sentences": {
        "kk": "Жаңа сөйлемдер векторлануда",
        "ru": "Векторизация предложений",
    },
    "loading the new index": {"kk": "Жаңа индекс жүктелуде", "ru": "Загрузка нового индекса"},
    "done": {"kk": "Дайын", "ru": "Готово"},
}


def code(label: str | None) -> str:
    """The language code of a language picker label (Kazakh for anything unknown)."""
    return LANGUAGES.get(label or "", DEFAULT_LANGUAGE)


def browser_language(accept_language: str | None) -> str | None:
    """The first of kk/ru/en in an ``Accept-Language`` header (``None`` when none is there)."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES.values():
            return tag
    return None


def stage_text(message: str, lang: str) -> str:
    """A library progress message (``label`` or ``label: 64/320``) in the interface language."""
    label, sep, count = message.partition(": ")
    return STAGES.get(label, {}).get(lang, label) + (sep + count if sep else "")


def question_error(exc: QuestionError, lang: str) -> str:
    """Why a question was refused, in the interface language (by the error's ``code``).

    The pipeline's message is English (it is also the API's); a Kazakh sentence with an English
    reason inside it reads as broken, so the chat says it from its own table.
    """
    t = TEXT[lang]
    template = t.get(f"q_{exc.code}", t["q_invalid"])
    return template.format(limit=exc.limit if exc.limit is not None else "")
